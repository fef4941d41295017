#!/usr/bin/env bash
# Builds the os4x distribution packages from one staged file tree:
#   target/os4x-pkg/os4x_<version>_<arch>.deb   (dpkg-deb)
#   target/os4x-pkg/os4x-<version>-1.<arch>.rpm  (cargo generate-rpm, when
#                                                 installed, or with --rpm)
# Usage: packaging/build-packages.sh [--rpm] [--no-build]
#   --rpm       fail if the RPM cannot be built (default: skip it with a note)
#   --no-build  reuse target/release binaries (CI builds them once)
set -euo pipefail
cd "$(dirname "$0")/.."

want_rpm=0 build=1
for a in "$@"; do
    case "$a" in
        --rpm) want_rpm=1 ;;
        --no-build) build=0 ;;
        *) echo "usage: $0 [--rpm] [--no-build]" >&2; exit 2 ;;
    esac
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
# Binaries come from cargo's target directory, wherever CARGO_TARGET_DIR puts it.
release=${CARGO_TARGET_DIR:-target}/release
out=target/os4x-pkg
root=$out/root
daemons=(os4xrd os4xrd_tcpip os4xrd_tcpip_tls os4xrd_capi os4xsqd os4xclientd os4xdebugd os4x-web)
tools=(os4x os4x-pidctl)

if ((build)); then
    # One invocation: features are unified once, so shared dependencies
    # are compiled (and stored) once rather than per package.
    cargo build --release --locked -p os4x-services -p os4x-web -p capi -p os4x-packaging --bins
fi

rm -rf "$root" && mkdir -p "$root"
inst() { install -D -m "$1" "$2" "$root$3"; }
# Daemons in /usr/sbin (os4xrd starts its children from its own directory),
# admin tools in /usr/bin. Debug info stays out of the package.
for b in "${daemons[@]}"; do inst 0755 "$release/$b" "/usr/sbin/$b"; done
for b in "${tools[@]}"; do inst 0755 "$release/$b" "/usr/bin/$b"; done
# The ISDN exchange simulator as remote CAPI: ISDN set-ups can be tried
# without hardware (README "Demo without hardware").
inst 0755 "$release/capi-sim" /usr/bin/capi-sim
strip --strip-debug "$root"/usr/sbin/* "$root"/usr/bin/*
for u in units/*.service units/*.socket units/*.target; do
    inst 0644 "$u" "/usr/lib/systemd/system/$(basename "$u")"
done
inst 0644 units/sysusers.d/os4x.conf /usr/lib/sysusers.d/os4x.conf
inst 0644 units/tmpfiles.d/os4x.conf /usr/lib/tmpfiles.d/os4x.conf
inst 0640 packaging/os4x.toml /etc/os4x/os4x.toml
# os4x-web may start/stop/restart the os4x daemon units (and nothing else)
# through polkit; the sudoers variant is an example for hosts without polkit.
inst 0644 packaging/polkit/49-os4x-web.rules /usr/share/polkit-1/rules.d/49-os4x-web.rules
inst 0644 packaging/sudoers/os4x-web /usr/share/doc/os4x/examples/sudoers.d/os4x-web
inst 0644 README.md /usr/share/doc/os4x/README.md
inst 0644 packaging/debian/copyright /usr/share/doc/os4x/copyright

# Man pages and completions, rendered from the programs' clap definitions.
docs=$out/docs
rm -rf "$docs"
"$release/os4x-gen-docs" "$docs"
for sec in 1 8; do
    for p in "$docs/man$sec"/*."$sec"; do
        [ -e "$p" ] || continue
        inst 0644 "$p" "/usr/share/man/man$sec/$(basename "$p")"
        gzip -9n "$root/usr/share/man/man$sec/$(basename "$p")"
    done
done
for b in "${tools[@]}" "${daemons[@]}"; do
    inst 0644 "$docs/completions/bash/$b" "/usr/share/bash-completion/completions/$b"
    inst 0644 "$docs/completions/zsh/_$b" "/usr/share/zsh/vendor-completions/_$b"
    inst 0644 "$docs/completions/fish/$b.fish" "/usr/share/fish/vendor_completions.d/$b.fish"
done

# --- .deb ---
deb_root=$out/deb-root
rm -rf "$deb_root" && cp -a "$root" "$deb_root"
mkdir -p "$deb_root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    packaging/debian/control.in > "$deb_root/DEBIAN/control"
echo /etc/os4x/os4x.toml > "$deb_root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$deb_root/DEBIAN/$s"; done
deb=$out/os4x_${version}_${arch}.deb
# root:root ownership in the archive without fakeroot.
dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$deb" >/dev/null
echo "built $deb"

# --- .rpm (same staged tree; metadata in services/Cargo.toml) ---
if cargo generate-rpm --version >/dev/null 2>&1; then
    cargo generate-rpm -p services -o "$out/" >/dev/null
    ls "$out"/*.rpm | sed 's/^/built /'
elif ((want_rpm)); then
    echo "cargo-generate-rpm is not installed: cargo install cargo-generate-rpm" >&2
    exit 1
else
    echo "note: RPM skipped (cargo install cargo-generate-rpm to build it)"
fi
