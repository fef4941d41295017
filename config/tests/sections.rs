//! Each section as the aggregate parses it: defaults, values, and errors
//! that name the key. (The sections themselves never see the aggregate.)

mod rd {
    use std::path::Path;

    use os4x_config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/os4x/os4x.toml"))
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.rd.tcp_listen, vec!["0.0.0.0:3305".parse().unwrap()]);
        assert_eq!(c.rd.tls.listen, vec!["0.0.0.0:6619".parse().unwrap()]);
        assert_eq!(c.rd.inbox_dir, Path::new("/var/lib/os4x/inbox"));
        assert_eq!(c.rd.max_sessions, 100);
        assert_eq!(c.rd.idle_timeout.as_secs(), 10);
        assert_eq!((c.rd.max_pending, c.rd.max_pending_per_ip), (64, 8));
        assert_eq!(c.rd.disk_reserve, 256 << 20);
        assert_eq!(c.rd.partial_expiry.map(|d| d.as_secs()), Some(14 * 86_400));
        assert!(c.rd.tls.certificate.is_none());
        assert!(c.local.odette_id.is_none());
        assert!(c.local.require_id().unwrap_err().contains("[local]"));
    }

    #[test]
    fn values() {
        let c = parse(
            "state_dir = \"/srv/os4x\"\n[local]\nodette_id = \"O0013000000ME\"\npassword = \"pw\"\n\
             [rd]\nmax_sessions = 5\nresponse_timeout = 30\n\
             [tcp]\nlisten = [\"127.0.0.1:3305\", \"[::1]:3305\"]\n\
             [tls]\ncertificate = \"/c.pem\"\nprivate_key = \"/k.pem\"\nrequire_client_certificate = true\n",
        )
        .unwrap();
        assert_eq!(c.local.odette_id.unwrap().as_str(), "O0013000000ME");
        assert_eq!(c.local.password.as_str(), "pw");
        assert_eq!(c.rd.inbox_dir, Path::new("/srv/os4x/inbox"));
        assert_eq!(c.rd.max_sessions, 5);
        assert_eq!(c.rd.response_timeout.as_secs(), 30);
        assert_eq!(c.rd.tcp_listen.len(), 2);
        assert!(c.rd.tls.require_client_certificate);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[tcp]\nlisten = [\"localhost\"]\n", "tcp.listen"),
            ("[rd]\nmax_sessions = 0\n", "rd.max_sessions"),
            ("[rd]\nidle_timeout = 0\n", "rd.idle_timeout"),
            ("[rd]\nmax_pending_per_ip = 0\n", "rd.max_pending_per_ip"),
            ("[rd]\naccept_rate = 0\n", "rd.accept_rate"),
            ("[rd]\ninbox_dir = \"inbox\"\n", "rd.inbox_dir"),
            ("[tls]\ncertificate = \"/c.pem\"\n", "tls.private_key"),
            (
                "[local]\nodette_id = \"no spaces first\"\n",
                "local.odette_id",
            ),
            ("[local]\npassword = \"123456789\"\n", "local.password"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key(), Some(key), "{text}: {e}");
        }
        let e = parse("[tls]\ncertficate = \"/x\"\n").unwrap_err();
        assert!(e.to_string().contains("certficate"), "{e}");
    }
}

mod security {
    use os4x_config::{Config, ConfigError};
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/os4x/os4x.toml"))
    }

    fn key_of(text: &str) -> String {
        match parse(text) {
            Err(ConfigError::Key { key, .. }) => key,
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_values() {
        let c = parse("state_dir = \"/srv/os4x\"\n").unwrap().security;
        assert_eq!(c.signing, None);
        assert_eq!(c.crl_dir, Path::new("/srv/os4x/crl"));
        assert_eq!(c.crl_refresh, Duration::from_secs(3600));
        let c = parse(
            "[security]\ncertificate = \"/k/a.pem\"\nprivate_key = \"/k/a.key\"\n\
             ca_file = \"/k/ca.pem\"\ncrl_dir = \"/c\"\ncrl_refresh = 60\n",
        )
        .unwrap()
        .security;
        let pair = c.signing.unwrap();
        assert_eq!(pair.certificate, Path::new("/k/a.pem"));
        assert_eq!(pair.private_key, Path::new("/k/a.key"));
        assert_eq!(c.encryption, None);
        assert_eq!(c.crl_refresh, Duration::from_secs(60));
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            key_of("[security]\ncertificate = \"/k/a.pem\"\n"),
            "security.private_key"
        );
        assert_eq!(
            key_of("[security]\nencryption_key = \"/k/a.key\"\n"),
            "security.encryption_certificate"
        );
        assert_eq!(
            key_of("[security]\nca_file = \"ca.pem\"\n"),
            "security.ca_file"
        );
        assert_eq!(
            key_of("[security]\ncrl_refresh = 0\n"),
            "security.crl_refresh"
        );
        assert!(key_of("[security]\ncertficate = \"/x\"\n").contains("certficate"));
    }
}

mod web {
    use std::path::Path;

    use os4x_config::{Config, ConfigError};

    use os4x_config::web::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/os4x/os4x.toml"))
    }

    #[test]
    fn defaults_and_values() {
        let c = parse("").unwrap().web;
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!((c.control, c.tls.is_none()), (Control::Auto, true));
        let c = parse(
            "[web]\nlisten = \"[::1]:9\"\ncontrol = \"direct\"\ntls_certificate = \"/c\"\n\
             tls_private_key = \"/k\"\nsystemctl = [\"sudo\", \"-n\", \"systemctl\"]\n",
        )
        .unwrap()
        .web;
        assert_eq!(c.control, Control::Direct);
        assert_eq!(c.tls, Some(("/c".into(), "/k".into())));
        assert_eq!(c.systemctl.len(), 3);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[web]\nlisten = \"x\"\n", "web.listen"),
            ("[web]\ncontrol = \"maybe\"\n", "web.control"),
            ("[web]\ntls_certificate = \"/c\"\n", "web.tls_private_key"),
            ("[web]\nsession_idle = 1\n", "web.session_idle"),
            ("[web]\nsystemctl = []\n", "web.systemctl"),
            ("[web]\ndaemon_dir = \"bin\"\n", "web.daemon_dir"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key(), Some(key), "{text}: {e}");
        }
        let e = parse("[web]\nlisen = 1\n").unwrap_err();
        assert!(e.key().is_some_and(|k| k.contains("lisen")), "{e}");
    }
}
