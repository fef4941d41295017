#!/bin/bash
# Helper library: boot a real systemd (PID 1) in a systemd-nspawn container on a
# host whose PID 1 is NOT systemd (no system bus, no machined).
# Adapted from the project's shared recipe (systemd-container/nspawn-itest.sh):
# os4x's image adds sqlite3 (to read os4x_pids independently of os4x's own
# tools) and lives in its own directory so other users of the recipe keep theirs.
# Usage: source this file, then call itest_build_image / itest_boot / itest_exec /
# itest_teardown.  All state lives under /var/lib/machines and /run/itest-*.
set -o pipefail

ITEST_IMG=${ITEST_IMG:-/var/lib/machines/os4x-itest-bookworm}   # cached base tree
ITEST_INCLUDE=${ITEST_INCLUDE:-systemd,systemd-sysv,dbus,python3-minimal,sqlite3,polkitd,libpam-systemd}
ITEST_NAME=${ITEST_NAME:-itest1}                             # machine name (unique per concurrent container)
# Debian mirror: the one apt is already configured with on this machine.
_apt_mirror() {
    local u
    u=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
    [ -n "$u" ] || u=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null)
    echo "$u"
}
ITEST_MIRROR=${ITEST_MIRROR:-$(_apt_mirror)}
ITEST_NET=${ITEST_NET---private-network}                   # "" = share the host's network namespace
ITEST_STATE=/run/itest-$ITEST_NAME                           # pid files + console log
ITEST_CG=itest-$ITEST_NAME                                   # host cgroup dir name

_log() { echo "[itest $(date +%T.%3N)] $*" >&2; }

# 1. Host packages (idempotent).  systemd-container is pinned to the host's systemd
#    version so that apt does not upgrade the host's systemd/libsystemd0.
itest_host_deps() {
    if command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null; then return 0; fi
    apt-get update -q
    local v pkg=systemd-container
    v=$(dpkg-query -W -f='${Version}' systemd 2>/dev/null) && [ -n "$v" ] && pkg="systemd-container=$v"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" debootstrap ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd-container debootstrap
}

_itest_umount_under() {
    local m
    awk -v p="$1" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m"; done
}

# 2. Base tree (idempotent: built once into $IMG.tmp, renamed when complete).
itest_build_image() {
    # The stamp holds the package list: a changed list rebuilds the cache.
    [ "$(cat "$ITEST_IMG/.itest-ok" 2>/dev/null)" = "$ITEST_INCLUDE" ] && return 0
    _itest_umount_under "$ITEST_IMG.tmp"      # a killed debootstrap leaves proc/sys mounted
    rm -rf --one-file-system "$ITEST_IMG.tmp"
    mkdir -p "$(dirname "$ITEST_IMG")"
    timeout 900 debootstrap --variant=minbase \
        --include="$ITEST_INCLUDE" \
        bookworm "$ITEST_IMG.tmp" "$ITEST_MIRROR" || return 1
    echo itest > "$ITEST_IMG.tmp/etc/hostname"           # debootstrap copied the host's
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' > "$ITEST_IMG.tmp/etc/hosts"
    systemctl --root="$ITEST_IMG.tmp" set-default multi-user.target
    # Units that are useless/noisy in a throwaway container.
    systemctl --root="$ITEST_IMG.tmp" mask console-getty.service getty@tty1.service \
        apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        fstrim.timer e2scrub_reap.service systemd-pstore.service >/dev/null 2>&1 || true
    echo "$ITEST_INCLUDE" > "$ITEST_IMG.tmp/.itest-ok"
    rm -rf --one-file-system "$ITEST_IMG"
    mv "$ITEST_IMG.tmp" "$ITEST_IMG"
}

# Every cgroup hierarchy nspawn/systemd care about: name=systemd (v1) and cgroup2.
_itest_cg_roots() {
    local d
    for d in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        case "$(stat -f -c %T "$d" 2>/dev/null)" in
            cgroup2fs) echo "$d" ;;
            cgroupfs)  [ "$d" = /sys/fs/cgroup/systemd ] && echo "$d" ;;
        esac
    done
}

# 3. Boot.  Sets ITEST_NSPID (systemd-nspawn) and ITEST_LEADER (container PID 1,
#    host PID).  Root is the cached tree with a tmpfs overlay (--volatile=overlay):
#    nothing the test does is written back to the image.
itest_boot() {
    local t0 r state i
    itest_teardown            # leftovers of an earlier run that was killed
    t0=$(date +%s.%N)
    mkdir -p "$ITEST_STATE"
    # Put nspawn into its own cgroup (in both hierarchies) so that the
    # payload/ and supervisor/ sub-cgroups it creates with --keep-unit do not land in
    # the host's root cgroup and can be removed afterwards.
    for r in $(_itest_cg_roots); do mkdir -p "$r/$ITEST_CG"; done
    # nspawn stays in the caller's process group on purpose: a SIGTERM/SIGINT sent to
    # the test's group (timeout(1), Ctrl-C) reaches nspawn, which then halts the container.
    rm -f "$ITEST_STATE/nspawn.pid"
    bash -c '
        for r in "$@"; do echo $$ > "$r/'"$ITEST_CG"'/cgroup.procs" || exit 97; done
        echo $$ > "'"$ITEST_STATE"'/nspawn.pid"
        exec systemd-nspawn --quiet --boot --register=no --keep-unit \
            '"$ITEST_NET"' --volatile=overlay \
            --directory='"$ITEST_IMG"' --machine='"$ITEST_NAME"' \
            --console=read-only' _ $(_itest_cg_roots) \
        </dev/null >"$ITEST_STATE/console.log" 2>&1 &
    ITEST_NSPID=$!      # same PID: bash execs nspawn
    ITEST_LEADER=
    for i in $(seq 1 300); do   # <= 30 s
        ITEST_LEADER=$(pgrep -P "$ITEST_NSPID" -x systemd | head -n1) && [ -n "$ITEST_LEADER" ] && break
        kill -0 "$ITEST_NSPID" 2>/dev/null || { _log "nspawn died:"; cat "$ITEST_STATE/console.log" >&2; return 1; }
        sleep 0.1
    done
    [ -n "$ITEST_LEADER" ] || { _log "no container init found"; return 1; }
    echo "$ITEST_LEADER" > "$ITEST_STATE/leader.pid"
    for i in $(seq 1 600); do   # <= 60 s
        state=$(itest_exec systemctl is-system-running 2>/dev/null)
        case "$state" in running|degraded) break ;; esac
        kill -0 "$ITEST_NSPID" 2>/dev/null || { _log "nspawn died:"; cat "$ITEST_STATE/console.log" >&2; return 1; }
        sleep 0.1
    done
    _log "boot: state=$state nspawn=$ITEST_NSPID leader=$ITEST_LEADER in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s"
    case "$state" in running|degraded) return 0 ;; *) return 1 ;; esac
}

# Run a command inside the container (all namespaces of its PID 1), clean env.
itest_exec() {
    timeout "${ITEST_EXEC_TIMEOUT:-30}" nsenter --target "$ITEST_LEADER" --all -- \
        /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 SYSTEMD_COLORS=0 SYSTEMD_PAGER= "$@"
}

# Copy a host file into the running container's (overlay) root.
itest_copy_in() {  # itest_copy_in SRC DEST_IN_CONTAINER [MODE]
    install -D -m "${3:-0644}" "$1" "/proc/$ITEST_LEADER/root$2"
}

# 4. Teardown: clean poweroff, escalate if needed, then remove host-side leftovers.
#    Source of truth is our cgroup (itest-$NAME): it also catches a container
#    orphaned by a SIGKILLed nspawn, and PIDs are only signalled after checking that
#    they live in that cgroup (pid files may be stale after a VM restart, /run is on disk here).
_itest_cg2() {  # the cgroup2 dir of this container (hybrid: unified/, pure v2: /sys/fs/cgroup)
    local r; for r in $(_itest_cg_roots); do
        [ "$(stat -f -c %T "$r")" = cgroup2fs ] && { echo "$r/$ITEST_CG"; return; }
    done
}
_itest_ours() {  # _itest_ours PID: true if PID is in our cgroup subtree
    [ -n "$1" ] && grep -q "^0::/$ITEST_CG\(/\|\$\)" "/proc/$1/cgroup" 2>/dev/null
}
_itest_populated() {
    local cg; cg=$(_itest_cg2)
    [ -n "$cg" ] && [ -e "$cg/cgroup.events" ] && grep -q '^populated 1' "$cg/cgroup.events"
}
_itest_wait_empty() {  # _itest_wait_empty TENTHS_OF_SECONDS
    local i; for i in $(seq 1 "$1"); do _itest_populated || return 0; sleep 0.1; done; return 1
}
itest_teardown() {
    local nspid leader i r cg
    nspid=${ITEST_NSPID:-$(cat "$ITEST_STATE/nspawn.pid" 2>/dev/null)}
    leader=${ITEST_LEADER:-$(cat "$ITEST_STATE/leader.pid" 2>/dev/null)}
    cg=$(_itest_cg2)
    if _itest_populated; then
        # container PID 1 = the only process in payload/init.scope (or payload/ early in boot)
        _itest_ours "$leader" || leader=$(cat "$cg/payload/init.scope/cgroup.procs" "$cg/payload/cgroup.procs" 2>/dev/null | head -n1)
        _itest_ours "$nspid"  || nspid=$(cat "$cg/supervisor/cgroup.procs" 2>/dev/null | head -n1)
        _itest_ours "$leader" && kill -s SIGRTMIN+4 "$leader" 2>/dev/null   # = systemctl poweroff
        if ! _itest_wait_empty 200; then
            _log "poweroff timed out; SIGTERM nspawn"
            _itest_ours "$nspid" && kill -TERM "$nspid" 2>/dev/null
            if ! _itest_wait_empty 100; then
                _log "SIGKILL everything in $cg"; echo 1 > "$cg/cgroup.kill"; _itest_wait_empty 50
            fi
        fi
    fi
    [ -n "$nspid" ] && wait "$nspid" 2>/dev/null   # reap if it is our child
    # An orphaned container's PID 1 can linger briefly as a zombie until the host's init reaps it.
    for i in $(seq 1 50); do [ -n "$leader" ] && [ -e "/proc/$leader" ] && [ "$(cut -d' ' -f3 "/proc/$leader/stat" 2>/dev/null)" = Z ] || break; sleep 0.1; done
    # Remove the cgroups we created (deepest first).
    for r in $(_itest_cg_roots); do
        [ -d "$r/$ITEST_CG" ] || continue
        for i in $(seq 1 50); do
            find "$r/$ITEST_CG" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$r/$ITEST_CG" ] || break; sleep 0.1
        done
        [ -d "$r/$ITEST_CG" ] && _log "WARNING: could not remove $r/$ITEST_CG"
    done
    rm -rf "$ITEST_STATE"
    ITEST_NSPID= ITEST_LEADER=
}
