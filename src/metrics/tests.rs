use super::*;

fn text(registry: &Registry) -> String {
    let mut out = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &registry.gather(),
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

fn table_name(name: &str) -> &'static str {
    COMMANDS.iter().find(|c| c.name == name).unwrap().name
}

#[test]
fn registers_every_metric_with_prefix() {
    let registry = Registry::new();
    let m = Metrics::new(&registry).unwrap();
    m.record_command(table_name("get"), true, Duration::from_micros(50));
    m.record_redirect(RedirectKind::Moved);
    m.node("10.0.0.1:7000")
        .record_error(BackendErrorKind::Timeout);
    m.record_topology_refresh("moved", true);
    let out = text(&registry);
    for name in [
        "slotway_client_connections ",
        "slotway_client_connections_total ",
        "slotway_commands_total{",
        "slotway_command_duration_seconds_bucket{",
        "slotway_redirects_total{",
        "slotway_backend_requests_total{",
        "slotway_backend_errors_total{",
        "slotway_backend_connections{",
        "slotway_topology_refreshes_total{",
        "slotway_topology_epoch ",
        "slotway_unknown_outcome_total ",
        "slotway_protocol_errors_total ",
    ] {
        assert!(out.contains(name), "missing {name} in\n{out}");
    }
}

#[test]
fn second_registration_on_same_registry_fails() {
    let registry = Registry::new();
    let _m = Metrics::new(&registry).unwrap();
    assert!(Metrics::new(&registry).is_err());
    // Another registry is independent: no globals.
    Metrics::new(&Registry::new()).unwrap();
}

#[test]
fn record_command_counts_by_table_name_and_outcome() {
    let registry = Registry::new();
    let m = Metrics::new(&registry).unwrap();
    let get = table_name("get");
    m.record_command(get, true, Duration::from_micros(20));
    m.record_command(get, true, Duration::from_millis(3));
    m.record_command(get, false, Duration::from_secs(20));
    // An equal name that is not the table's own string still finds the entry.
    let leaked: &'static str = Box::leak(String::from("get").into_boxed_str());
    m.record_command(leaked, true, Duration::ZERO);
    m.record_command("no-such-command", false, Duration::ZERO);
    m.record_command("GET", true, Duration::ZERO);

    let ok = m.commands_total.with_label_values(&["get", "ok"]).get();
    let err = m.commands_total.with_label_values(&["get", "error"]).get();
    let other_ok = m.commands_total.with_label_values(&["other", "ok"]).get();
    let other_err = m
        .commands_total
        .with_label_values(&["other", "error"])
        .get();
    assert_eq!((ok, err, other_ok, other_err), (3, 1, 1, 1));
    assert_eq!(m.command_duration_seconds.get_sample_count(), 6);

    let out = text(&registry);
    assert!(!out.contains("no-such-command"), "{out}");
    assert!(
        out.contains("slotway_command_duration_seconds_bucket{le=\"0.00001\"} 3"),
        "{out}"
    );
    assert!(
        out.contains("slotway_command_duration_seconds_bucket{le=\"10\"} 5"),
        "{out}"
    );
}

#[test]
fn subcommand_names_are_labels() {
    let m = Metrics::new(&Registry::new()).unwrap();
    let sub = COMMANDS.iter().flat_map(|c| c.subcommands).next();
    if let Some(sub) = sub {
        m.record_command(sub.name, true, Duration::ZERO);
        assert_eq!(
            m.commands_total.with_label_values(&[sub.name, "ok"]).get(),
            1
        );
    }
}

#[test]
fn client_guard_tracks_connections() {
    let m = Metrics::new(&Registry::new()).unwrap();
    let a = m.client_connected();
    let b = m.client_connected();
    assert_eq!(m.client_connections.get(), 2);
    drop(a);
    assert_eq!(m.client_connections.get(), 1);
    drop(b);
    assert_eq!(m.client_connections.get(), 0);
    assert_eq!(m.client_connections_total.get(), 2);
}

#[test]
fn redirect_kinds_have_their_own_series() {
    let m = Metrics::new(&Registry::new()).unwrap();
    for (n, kind) in RedirectKind::ALL.into_iter().enumerate() {
        for _ in 0..=n {
            m.record_redirect(kind);
        }
    }
    for (n, kind) in RedirectKind::ALL.into_iter().enumerate() {
        let count = m.redirects.get(n).unwrap().get();
        assert_eq!(count, n as u64 + 1, "{kind:?}");
    }
}

#[test]
fn node_series_and_forget() {
    let registry = Registry::new();
    let m = Metrics::new(&registry).unwrap();
    let node = m.node("10.0.0.1:7000");
    node.requests_total.inc_by(3);
    node.connections.set(2);
    node.record_error(BackendErrorKind::Closed);
    let out = text(&registry);
    assert!(
        out.contains("slotway_backend_requests_total{node=\"10.0.0.1:7000\"} 3"),
        "{out}"
    );
    assert!(
        out.contains("slotway_backend_errors_total{kind=\"closed\",node=\"10.0.0.1:7000\"} 1"),
        "{out}"
    );
    m.forget_node("10.0.0.1:7000");
    assert!(!text(&registry).contains("10.0.0.1:7000"));
}
