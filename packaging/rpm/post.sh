# os4x %post ($1: 1 = install, 2 = upgrade). Starts nothing on install: the
# daemons need the station's Odette ID configured first.
systemd-sysusers os4x.conf
systemd-tmpfiles --create os4x.conf
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
    if [ "$1" -gt 1 ]; then
        systemctl try-restart os4xsqd.service os4xrd-tcpip.service \
            os4xrd-tls.service os4xclientd.service os4xdebugd.service || :
    fi
fi
if [ "$1" -eq 1 ]; then
    echo "os4x: set [local] odette_id in /etc/os4x/os4x.toml, then: systemctl enable --now os4x.target"
fi
