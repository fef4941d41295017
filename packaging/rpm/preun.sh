# os4x %preun ($1: 0 = erase, 1 = upgrade): stop the daemons on erase.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now os4x.target os4xrd.target os4xsqd.service \
        os4xrd-tcpip.socket os4xrd-tls.socket os4xclientd.socket \
        os4xdebugd.socket >/dev/null 2>&1 || :
    systemctl stop os4xrd-tcpip.service os4xrd-tls.service \
        os4xclientd.service os4xdebugd.service >/dev/null 2>&1 || :
fi
