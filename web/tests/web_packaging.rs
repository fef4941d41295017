//! The shipped polkit rule, evaluated by a JavaScript engine (node, as
//! polkitd's duktape/mozjs would): only the os4x user, only the os4x
//! daemon units, only start/stop/restart.

use std::path::Path;
use std::process::Command;

const RULE: &str = "../packaging/polkit/49-os4x-web.rules";

#[test]
fn polkit_rule_allows_only_os4x_units_for_os4x() {
    let node = ["/usr/bin/node", "/usr/bin/nodejs"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs node (Debian package nodejs) to evaluate the polkit rule");
    let rule = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(RULE)).unwrap();
    // Every case: [action id, user, unit, verb, expected "yes"|"no"].
    let cases = r#"[
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xsqd.service", "start", "yes"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xrd-tcpip.service", "restart", "yes"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xrd-tls.service", "stop", "yes"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xdebugd.service", "start", "yes"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xrd-capi@12.service", "start", "yes"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4x-web.service", "stop", "no"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "sshd.service", "stop", "no"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xsqd.service.d", "start", "no"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "xos4xsqd.service", "start", "no"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xsqd.service", "enable", "no"],
        ["org.freedesktop.systemd1.manage-units", "os4x", "os4xsqd.service", "reload", "no"],
        ["org.freedesktop.systemd1.manage-units", "www-data", "os4xsqd.service", "start", "no"],
        ["org.freedesktop.systemd1.manage-unit-files", "os4x", "os4xsqd.service", "start", "no"],
        ["org.freedesktop.systemd1.manage-units", "os4x", null, "start", "no"]
    ]"#;
    let script = format!(
        r#"
        const rules = [];
        const polkit = {{ Result: {{ YES: "yes", NO: "no", NOT_HANDLED: null }}, addRule: (f) => rules.push(f) }};
        {rule}
        const cases = {cases};
        let bad = 0;
        for (const [id, user, unit, verb, want] of cases) {{
            const action = {{ id, lookup: (k) => ({{ unit, verb }})[k] }};
            const got = rules.map((f) => f(action, {{ user }})).find((r) => r !== null && r !== undefined) || "no";
            if (got !== want) {{ bad++; console.log(`WRONG: ${{id}} ${{user}} ${{unit}} ${{verb}}: ${{got}}, want ${{want}}`); }}
        }}
        console.log(`${{cases.length - bad}} of ${{cases.length}} right`);
        process.exit(bad ? 1 : 0);
        "#
    );
    let out = Command::new(node)
        .arg("-e")
        .arg(&script)
        .output()
        .expect("run node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("14 of 14 right"), "{text}");
}
