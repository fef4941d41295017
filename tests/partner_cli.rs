//! `os4x partner ...` as a real process against a real database.

use std::path::Path;
use std::process::{Command, Output};

const OS4X: &str = env!("CARGO_BIN_EXE_os4x");

fn os4x(config: &Path, args: &[&str]) -> Output {
    Command::new(OS4X)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("OS4X_CONFIG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("os4x.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\ndatabase = \"{}\"\n",
            dir.path().join("state").display(),
            os4x_store::testing::database_url_for(&dir.path().join("state"))
        ),
    )
    .unwrap();
    (dir, config)
}

#[test]
fn add_list_show_set_remove() {
    let (_dir, config) = setup();
    let add = [
        "partner",
        "add",
        "O0013000000PARTNER",
        "--password-in",
        "SECRET",
        "--password-out",
        "hello",
        "--name",
        "Partner AG",
        "--direction",
        "receive",
        "--tls-required",
        "--post-receive",
        "logger received",
    ];
    ok(&os4x(&config, &add));
    let dup = os4x(&config, &add);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    let list: serde_json::Value =
        serde_json::from_str(&ok(&os4x(&config, &["partner", "list", "--json"]))).unwrap();
    assert_eq!(list[0]["id"], "O0013000000PARTNER");
    assert_eq!(list[0]["directions"], "receive");
    assert_eq!(list[0]["tls_required"], true);
    assert_eq!(list[0]["post_receive"], "logger received");
    assert!(list[0].get("password_in").is_none(), "passwords hidden");

    let table = ok(&os4x(&config, &["partner", "list"]));
    assert!(
        table.contains("O0013000000PARTNER") && table.contains("Partner AG"),
        "{table}"
    );

    let shown = ok(&os4x(&config, &["partner", "show", "O0013000000PARTNER"]));
    assert!(
        !shown.contains("SECRET") && shown.contains("********"),
        "{shown}"
    );
    let shown = ok(&os4x(
        &config,
        &[
            "partner",
            "show",
            "o0013000000partner",
            "--json",
            "--show-passwords",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        (v["password_in"].as_str(), v["password_out"].as_str()),
        (Some("SECRET"), Some("hello"))
    );

    let pin = "AB:".repeat(31) + "AB";
    ok(&os4x(
        &config,
        &[
            "partner",
            "set",
            "O0013000000PARTNER",
            "--enabled",
            "false",
            "--client-cert-required",
            "true",
            "--client-cert-sha256",
            &pin,
            "--post-receive",
            "",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&ok(&os4x(
        &config,
        &["partner", "show", "O0013000000PARTNER", "--json"],
    )))
    .unwrap();
    assert_eq!(v["enabled"], false);
    assert_eq!(v["client_cert_required"], true);
    assert_eq!(v["client_cert_sha256"], "ab".repeat(32));
    assert!(v["post_receive"].is_null());
    assert_eq!(v["name"], "Partner AG", "untouched fields stay");

    ok(&os4x(&config, &["partner", "remove", "O0013000000PARTNER"]));
    let gone = os4x(&config, &["partner", "remove", "O0013000000PARTNER"]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(
        ok(&os4x(&config, &["partner", "list", "--json"])).trim(),
        "[]"
    );
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let (dir, config) = setup();
    let bad_id = os4x(
        &config,
        &[
            "partner",
            "add",
            "o0013 lower",
            "--password-in",
            "A",
            "--password-out",
            "B",
        ],
    );
    assert_eq!(bad_id.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_id.stderr).contains("Odette ID"));
    let bad_dir = os4x(
        &config,
        &[
            "partner",
            "add",
            "O1",
            "--password-in",
            "A",
            "--password-out",
            "B",
            "--direction",
            "up",
        ],
    );
    assert_eq!(bad_dir.status.code(), Some(2));
    let long_pw = os4x(
        &config,
        &[
            "partner",
            "add",
            "O1",
            "--password-in",
            "TOOLONGPW",
            "--password-out",
            "B",
        ],
    );
    assert_eq!(long_pw.status.code(), Some(2));
    let bad_pin = os4x(
        &config,
        &["partner", "set", "O1", "--client-cert-sha256", "xyz"],
    );
    assert_eq!(bad_pin.status.code(), Some(1), "O1 does not exist");
    let missing = os4x(&config, &["partner", "show", "O1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("os4x partner list"));

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[local]\nodette_id = \"bad id!\"\n").unwrap();
    let out = os4x(&broken, &["partner", "list"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("local.odette_id"));
}

/// A self-signed CA certificate as PEM.
fn ca_pem(name: &str) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

fn show_json(config: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&os4x(config, &["partner", "show", id, "--json"]))).unwrap()
}

#[test]
fn client_ca_is_validated_stored_shown_and_removed() {
    let (dir, config) = setup();
    let ca = dir.path().join("partner-ca.pem");
    // A bundle: two CAs in one file.
    std::fs::write(&ca, ca_pem("Partner CA 1") + &ca_pem("Partner CA 2")).unwrap();
    let id = "O0013000000PARTNER";
    let add = |ca: &str| {
        os4x(
            &config,
            &[
                "partner",
                "add",
                id,
                "--password-in",
                "A",
                "--password-out",
                "B",
                "--client-cert-required",
                "--client-ca",
                ca,
            ],
        )
    };

    // Missing file: refused, nothing added.
    let missing = dir.path().join("nope.pem");
    let out = add(missing.to_str().unwrap());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.pem") && err.contains("PEM"), "{err}");
    assert_eq!(
        ok(&os4x(&config, &["partner", "list", "--json"])).trim(),
        "[]"
    );

    // A relative path is stored absolute (the daemon runs elsewhere).
    let out = Command::new(OS4X)
        .current_dir(dir.path())
        .arg("--config")
        .arg(&config)
        .args([
            "partner",
            "add",
            id,
            "--password-in",
            "A",
            "--password-out",
            "B",
            "--client-cert-required",
            "--client-ca",
            "partner-ca.pem",
        ])
        .env_remove("OS4X_CONFIG")
        .output()
        .unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGHUP"));
    let v = show_json(&config, id);
    assert_eq!(v["client_ca"], ca.to_str().unwrap());
    let list: serde_json::Value =
        serde_json::from_str(&ok(&os4x(&config, &["partner", "list", "--json"]))).unwrap();
    assert_eq!(list[0]["client_ca"], ca.to_str().unwrap());
    let table = ok(&os4x(&config, &["partner", "list"]));
    assert!(table.contains("req+ca"), "{table}");
    let shown = ok(&os4x(&config, &["partner", "show", id]));
    assert!(
        shown.contains(&format!("client_ca:            {}", ca.display())),
        "{shown}"
    );

    // Not PEM, or PEM without a certificate: refused, nothing changed.
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let key_only = dir.path().join("key.pem");
    std::fs::write(
        &key_only,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    for bad in [&garbage, &key_only] {
        let out = os4x(
            &config,
            &[
                "partner",
                "set",
                id,
                "--name",
                "changed",
                "--client-ca",
                bad.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", bad.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(bad.file_name().unwrap().to_str().unwrap()) && err.contains("certificate"),
            "{err}"
        );
        let v = show_json(&config, id);
        assert_eq!(v["client_ca"], ca.to_str().unwrap());
        assert_eq!(v["name"], "", "nothing changed");
    }

    // "" removes it.
    ok(&os4x(&config, &["partner", "set", id, "--client-ca", ""]));
    assert!(show_json(&config, id)["client_ca"].is_null());
}

#[test]
fn os4x_partner_table_is_imported_from_a_latin1_mysqldump_and_the_rest_reported() {
    let (dir, config) = setup();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[local]\nodette_id = \"O0013000000OS4X\"\npassword = \"LOCALPW\"\n");
    std::fs::write(&config, text).unwrap();
    let mut dump: Vec<u8> = b"CREATE TABLE `partner` (\n  `idx` int(11) NOT NULL,\n  `longname` varchar(64),\n  `his_ssid` varchar(25) NOT NULL,\n  `his_password` varchar(8),\n  `my_ssid` varchar(25),\n  `my_password` varchar(8),\n  `address` varchar(64),\n  `port_tls` int(11),\n  `addresstype` tinyint(4),\n  PRIMARY KEY (`idx`)\n) DEFAULT CHARSET=latin1;\nINSERT INTO `partner` VALUES (1,'M".to_vec();
    dump.push(0xFC); // ü in Latin-1
    dump.extend_from_slice(b"ller AG','O0013000000MUELLER','MPW','O0013000000OS4X','OURPW','oftp.mueller.example',6619,3),(2,'Wrong','O0013000000WRONG','WPW','O0013000000ELSE','X','h',6619,3);\n");
    let path = dir.path().join("partner.sql");
    std::fs::write(&path, dump).unwrap();
    let file = path.to_str().unwrap();

    let dry = os4x(&config, &["partner", "import", "--os4x", file, "--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(out.contains("would import O0013000000MUELLER"), "{out}");
    let list = ok(&os4x(&config, &["partner", "list", "--json"]));
    assert_eq!(list.trim(), "[]", "the dry run changed nothing");

    let run = os4x(&config, &["partner", "import", "--os4x", file]);
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("imported O0013000000MUELLER"), "{out}");
    assert!(
        out.contains("NOT imported row idx=2 (O0013000000WRONG)")
            && out.contains("O0013000000ELSE"),
        "{out}"
    );
    assert!(err.contains("1 row(s) not imported"), "{err}");
    let v = show_json(&config, "O0013000000MUELLER");
    assert_eq!(v["name"], "Müller AG");
    assert_eq!(v["tls_required"], true);
    let list: serde_json::Value =
        serde_json::from_str(&ok(&os4x(&config, &["partner", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    let missing = os4x(
        &config,
        &["partner", "import", "--os4x", "/nonexistent.sql"],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.sql"));
}
