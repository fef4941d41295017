# os4x %postun. Received and queued files in /var/lib/os4x are kept.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
