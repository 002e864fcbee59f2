use super::*;

const SHIPPED: &str = include_str!("../../config/slotway.toml");

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_flags() -> Overrides {
    Overrides::default()
}

fn write_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

/// The error's message, with the assertion that it names `needle`.
fn err_naming(result: Result<ProxyConfig, ConfigError>, needle: &str) -> String {
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains(needle), "{msg:?} should name {needle:?}");
    msg
}

#[test]
fn shipped_file_equals_defaults() {
    let cfg = ProxyConfig::from_toml_str(SHIPPED).unwrap();
    assert_eq!(cfg, ProxyConfig::default());
}

#[test]
fn defaults_are_valid_and_match_empty_document() {
    ProxyConfig::default().validate().unwrap();
    assert_eq!(
        ProxyConfig::from_toml_str("").unwrap(),
        ProxyConfig::default()
    );
    let loaded = ProxyConfig::load_with_env(None, env(&[]), &no_flags()).unwrap();
    assert_eq!(loaded, ProxyConfig::default());
}

#[test]
fn partial_section_keeps_other_defaults() {
    let cfg = ProxyConfig::from_toml_str("[backend]\nconnect_timeout_ms = 250\n").unwrap();
    assert_eq!(cfg.backend.connect_timeout_ms, 250);
    assert_eq!(cfg.backend.request_timeout_ms, DEFAULT_REQUEST_TIMEOUT_MS);
    assert_eq!(cfg.cluster, ClusterConfig::default());
}

#[test]
fn unknown_top_level_key_is_rejected() {
    err_naming(
        ProxyConfig::from_toml_str("listne = \"1.2.3.4:5\"\n"),
        "listne",
    );
}

#[test]
fn unknown_nested_key_is_rejected() {
    err_naming(
        ProxyConfig::from_toml_str("[cluster]\nseed = [\"a:1\"]\n"),
        "seed",
    );
    err_naming(
        ProxyConfig::from_toml_str("[metrics]\nport = 1\n"),
        "metrics",
    );
}

#[test]
fn unknown_key_in_file_names_the_file() {
    let f = write_file("[backend]\nbogus_knob = 3\n");
    let msg = err_naming(
        ProxyConfig::load_with_env(Some(f.path()), env(&[]), &no_flags()),
        "bogus_knob",
    );
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
}

#[test]
fn missing_file_is_an_error() {
    let r = ProxyConfig::load_with_env(
        Some(Path::new("/nonexistent/slotway.toml")),
        env(&[]),
        &no_flags(),
    );
    assert!(matches!(r, Err(ConfigError::ReadFile { .. })));
    err_naming(r, "/nonexistent/slotway.toml");
}

#[test]
fn toml_syntax_error_is_reported() {
    let f = write_file("listen = \n");
    let r = ProxyConfig::load_with_env(Some(f.path()), env(&[]), &no_flags());
    assert!(matches!(r, Err(ConfigError::Layer { .. })), "{r:?}");
}

#[test]
fn env_overlays_file_and_parses_seed_list() {
    let f = write_file("listen = \"127.0.0.1:1000\"\n[backend]\nconnect_timeout_ms = 10\n");
    let cfg = ProxyConfig::load_with_env(
        Some(f.path()),
        env(&[
            ("SLOTWAY_CLUSTER__SEEDS", "127.0.0.1:7001,127.0.0.1:7002"),
            ("SLOTWAY_BACKEND__CONNECT_TIMEOUT_MS", "20"),
            ("SLOTWAY_ADMIN_LISTEN", "0.0.0.0:9000"),
            ("SLOTWAY_LOG__LEVEL", "debug"),
            ("UNRELATED", "x"),
        ]),
        &no_flags(),
    )
    .unwrap();
    assert_eq!(cfg.cluster.seeds, ["127.0.0.1:7001", "127.0.0.1:7002"]);
    assert_eq!(cfg.backend.connect_timeout_ms, 20);
    assert_eq!(cfg.listen, "127.0.0.1:1000");
    assert_eq!(cfg.admin_listen, "0.0.0.0:9000");
    assert_eq!(cfg.log.level, "debug");
}

#[test]
fn env_single_seed_and_empty_value() {
    let cfg = ProxyConfig::load_with_env(
        None,
        env(&[
            ("SLOTWAY_CLUSTER__SEEDS", "redis-1:6379"),
            ("SLOTWAY_LISTEN", ""),
        ]),
        &no_flags(),
    )
    .unwrap();
    assert_eq!(cfg.cluster.seeds, ["redis-1:6379"]);
    assert_eq!(cfg.listen, DEFAULT_LISTEN, "empty variables count as unset");
}

#[test]
fn unknown_env_key_is_rejected() {
    let msg = err_naming(
        ProxyConfig::load_with_env(None, env(&[("SLOTWAY_BACKEND__TIMEOUT", "5")]), &no_flags()),
        "timeout",
    );
    assert!(msg.contains("environment"), "{msg}");
}

#[test]
fn env_bad_type_names_the_key() {
    err_naming(
        ProxyConfig::load_with_env(
            None,
            env(&[("SLOTWAY_BACKEND__CONNECT_TIMEOUT_MS", "soon")]),
            &no_flags(),
        ),
        "backend.connect_timeout_ms",
    );
}

#[test]
fn flags_override_env() {
    let flags = Overrides {
        listen: Some("127.0.0.1:1".into()),
        advertise: None,
        admin_listen: Some("127.0.0.1:2".into()),
        seeds: Some(vec!["10.0.0.1:7000".into()]),
        log_level: Some("warn".into()),
    };
    let cfg = ProxyConfig::load_with_env(
        None,
        env(&[
            ("SLOTWAY_LISTEN", "127.0.0.1:3"),
            ("SLOTWAY_CLUSTER__SEEDS", "127.0.0.1:7001,127.0.0.1:7002"),
        ]),
        &flags,
    )
    .unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:1");
    assert_eq!(cfg.admin_listen, "127.0.0.1:2");
    assert_eq!(cfg.cluster.seeds, ["10.0.0.1:7000"]);
    assert_eq!(cfg.log.level, "warn");
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        (
            "[backend]\nconnections_per_node = 0",
            "backend.connections_per_node",
        ),
        (
            "[backend]\nconnections_per_node = 65",
            "backend.connections_per_node",
        ),
        (
            "[backend]\nrequest_timeout_ms = 0",
            "backend.request_timeout_ms",
        ),
        ("[backend]\nconnect_timeout_ms = -5", "connect_timeout_ms"),
        (
            "[backend]\nconnect_timeout_ms = \"1s\"",
            "connect_timeout_ms",
        ),
        (
            "[cluster]\nrefresh_interval_ms = 86400001",
            "cluster.refresh_interval_ms",
        ),
        (
            "[cluster]\nmin_refresh_interval_ms = 6000",
            "cluster.min_refresh_interval_ms",
        ),
        (
            "[cluster]\nfailing_poll_interval_ms = 0",
            "cluster.failing_poll_interval_ms",
        ),
        ("[cluster]\nseeds = [\"a:1\", \"nope\"]", "cluster.seeds[1]"),
        ("[cluster]\nseeds = [\"a:0\"]", "cluster.seeds[0]"),
        ("[cluster]\nseeds = [\"bad host:1\"]", "cluster.seeds[0]"),
        ("[retry]\nmax_redirects = 0", "retry.max_redirects"),
        (
            "[retry]\nfailover_deadline_ms = 0",
            "retry.failover_deadline_ms",
        ),
        (
            "[limits]\nmax_inflight_per_client = 0",
            "limits.max_inflight_per_client",
        ),
        ("[limits]\nmax_clients = 0", "limits.max_clients"),
        ("listen = \"127.0.0.1\"", "listen"),
        ("listen = \"127.0.0.1:70000\"", "listen"),
        ("admin_listen = \":80\"", "admin_listen"),
        ("advertise = \"10.0.0.1\"", "advertise"),
        ("advertise = \"10.0.0.1:0\"", "advertise"),
        ("[log]\nlevel = \"inof\"", "log.level"),
        ("[log]\nlevel = \"slotway=loud\"", "log.level"),
        ("[log]\nlevel = \"\"", "log.level"),
    ];
    for (toml, key) in cases {
        let r = ProxyConfig::from_toml_str(toml);
        assert!(r.is_err(), "{toml:?} should be rejected");
        err_naming(r, key);
    }
}

#[test]
fn good_addresses_and_levels_are_accepted() {
    let cfg = ProxyConfig::from_toml_str(
        "listen = \"[::1]:0\"\nadmin_listen = \"localhost:9000\"\n\
         [cluster]\nseeds = [\"redis-0.redis.svc:6379\", \"10.1.2.3:7000\", \"[fe80::1]:7000\"]\n\
         [log]\nlevel = \"info,slotway::proxy=debug\"\n",
    )
    .unwrap();
    assert_eq!(cfg.cluster.seeds.len(), 3);
}

#[test]
fn advertise_layers_like_listen() {
    assert_eq!(
        ProxyConfig::default().advertise,
        "",
        "empty: the client's own address"
    );
    let f = write_file("advertise = \"proxy.example:7000\"\n");
    let from_file = ProxyConfig::load_with_env(Some(f.path()), env(&[]), &no_flags()).unwrap();
    assert_eq!(from_file.advertise, "proxy.example:7000");
    let from_env = ProxyConfig::load_with_env(
        Some(f.path()),
        env(&[("SLOTWAY_ADVERTISE", "203.0.113.7:6379")]),
        &no_flags(),
    )
    .unwrap();
    assert_eq!(from_env.advertise, "203.0.113.7:6379");
    let flags = Overrides {
        advertise: Some("[2001:db8::1]:7777".into()),
        ..Overrides::default()
    };
    let from_flag = ProxyConfig::load_with_env(
        Some(f.path()),
        env(&[("SLOTWAY_ADVERTISE", "203.0.113.7:6379")]),
        &flags,
    )
    .unwrap();
    assert_eq!(from_flag.advertise, "[2001:db8::1]:7777");
}

#[test]
fn fractional_and_negative_numbers_are_rejected() {
    // The config crate alone would round 1.7 to 2.
    err_naming(
        ProxyConfig::from_toml_str("[backend]\nconnect_timeout_ms = 1.7"),
        "backend.connect_timeout_ms",
    );
    err_naming(
        ProxyConfig::load_with_env(
            None,
            env(&[("SLOTWAY_RETRY__MAX_REDIRECTS", "2.5")]),
            &no_flags(),
        ),
        "retry.max_redirects",
    );
    err_naming(
        ProxyConfig::from_toml_str("[limits]\nmax_clients = -1"),
        "limits.max_clients",
    );
    err_naming(
        ProxyConfig::from_toml_str("[retry]\nmax_redirects = 4294967296"),
        "retry.max_redirects",
    );
}
