//! The dashboard renderer (`canary-dashboard`, `canary_tools::dashboard`) without a Prometheus:
//! the shipped dashboard's panels and queries read from its JSON, Grafana's variables and
//! intervals as Grafana defines them, and the SVG drawn for every panel. Against a real
//! Prometheus it runs in `monitoring.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use canary_control::metrics::prometheus::Series;
use canary_harness::envoy::repo_root;
use canary_harness::Result;
use canary_tools::dashboard::draw::{self, format_value, Drawn};
use canary_tools::dashboard::{
    expand, legend, substitute_variables, variable_values, Dashboard, TimeRange,
};

fn shipped_text() -> String {
    std::fs::read_to_string(repo_root().join("envoy/monitoring/canary-dashboard.json")).unwrap()
}

fn shipped() -> Dashboard {
    Dashboard::parse(&shipped_text()).unwrap()
}

/// A lookup of label values that must not be needed.
fn no_lookup(label: &str, selector: Option<&str>) -> Result<Vec<String>> {
    panic!("label values of {label} ({selector:?}) asked for: every variable has a saved value")
}

#[test]
fn every_panel_of_the_shipped_dashboard_is_read_with_its_place_title_and_queries() {
    let doc: serde_json::Value = serde_json::from_str(&shipped_text()).unwrap();
    let raw = doc["panels"].as_array().unwrap();
    let dashboard = shipped();
    assert_eq!(dashboard.title, doc["title"].as_str().unwrap());
    assert_eq!(dashboard.panels.len(), raw.len());
    assert!(raw.len() >= 6, "the dashboard has {} panels", raw.len());
    for (panel, raw) in dashboard.panels.iter().zip(raw) {
        assert_eq!(panel.title, raw["title"].as_str().unwrap());
        assert_eq!(panel.kind, raw["type"].as_str().unwrap());
        assert_eq!(
            u64::from(panel.grid.x),
            raw["gridPos"]["x"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(panel.grid.y),
            raw["gridPos"]["y"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(panel.grid.w),
            raw["gridPos"]["w"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(panel.grid.h),
            raw["gridPos"]["h"].as_u64().unwrap()
        );
        let exprs: Vec<&str> = raw["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap())
            .collect();
        let read: Vec<&str> = panel.targets.iter().map(|t| t.expr.as_str()).collect();
        assert_eq!(read, exprs, "{}", panel.title);
        assert!(!read.is_empty(), "{} has no query", panel.title);
    }
    // The configuration table is an instant query; the time series are ranges.
    let kinds: Vec<(&str, bool)> = dashboard
        .panels
        .iter()
        .flat_map(|p| p.targets.iter().map(move |t| (p.kind.as_str(), t.instant)))
        .collect();
    assert!(kinds.contains(&("table", true)), "{kinds:?}");
    assert!(kinds.contains(&("timeseries", false)), "{kinds:?}");
}

#[test]
fn every_shipped_query_expands_with_no_variable_left_and_grafanas_rate_interval() {
    let dashboard = shipped();
    let values = variable_values(&dashboard, &[], &mut no_lookup).unwrap();
    // 10 minutes, a 15 s scrape interval, panels several hundred points wide: $__interval is
    // the scrape interval (600 s / 500+ points is under it) and $__rate_interval is
    // max(15 s + 15 s, 4 × 15 s) = 60 s.
    let range = TimeRange {
        start: 1_000_000.0,
        end: 1_000_600.0,
        scrape_interval: 15.0,
    };
    let mut rated = 0;
    for panel in &dashboard.panels {
        let points = draw::chart_points(panel.grid);
        assert!(points > 40, "{}: {points} points", panel.title);
        for target in &panel.targets {
            let expr = expand(&target.expr, &values, &range, points).unwrap();
            assert!(!expr.contains("$"), "{}: {expr}", panel.title);
            if target.expr.contains("[$__rate_interval]") {
                assert!(expr.contains("[60s]"), "{}: {expr}", panel.title);
                rated += 1;
            }
        }
    }
    assert!(rated >= 5, "only {rated} queries use $__rate_interval");
}

#[test]
fn intervals_are_grafanas() {
    // Two minutes scraped every second on a 700-point panel: 120/700 s is under the scrape
    // interval, so 1 s; rate interval max(1 + 1, 4 × 1) = 4 s.
    let short = TimeRange {
        start: 0.0,
        end: 120.0,
        scrape_interval: 1.0,
    };
    assert_eq!(short.interval(700), 1.0);
    assert_eq!(short.rate_interval(700), 4.0);
    // Six hours on 100 points: 216 s; rate interval 216 + 15 = 231 s.
    let long = TimeRange {
        start: 0.0,
        end: 21_600.0,
        scrape_interval: 15.0,
    };
    assert_eq!(long.interval(100), 216.0);
    assert_eq!(long.rate_interval(100), 231.0);
    let values = BTreeMap::new();
    assert_eq!(
        expand(
            "rate(x[$__rate_interval]) / $__range_s / $__interval_ms [$__range]",
            &values,
            &long,
            100
        )
        .unwrap(),
        "rate(x[231s]) / 21600 / 216000 [21600s]"
    );
    // A fraction of a second is written in milliseconds.
    let odd = TimeRange {
        start: 0.0,
        end: 1.5,
        scrape_interval: 0.25,
    };
    assert_eq!(
        expand("[$__interval]", &values, &odd, 1).unwrap(),
        "[1500ms]"
    );
}

const VARIABLES: &str = r#"{"title": "t", "panels": [], "templating": {"list": [
  {"name": "datasource", "type": "datasource", "query": "prometheus"},
  {"name": "zone", "type": "query", "query": {"query": "label_values(up, zone)"}, "current": {}},
  {"name": "svc", "type": "query", "definition": "d",
   "query": "label_values(requests_total{zone=\"$zone\"}, service)", "current": {}},
  {"name": "rule", "type": "query", "includeAll": true, "allValue": ".*",
   "query": "label_values(rule)", "current": {"text": "All", "value": "$__all"}},
  {"name": "version", "type": "custom", "multi": true, "query": "a,b.c",
   "current": {"value": ["a", "b.c"]}},
  {"name": "every", "type": "custom", "includeAll": true, "query": "x, y",
   "current": {"value": ["$__all"]}}
]}}"#;

#[test]
fn variables_take_the_override_else_the_saved_value_else_the_first_label_value() {
    let dashboard = Dashboard::parse(VARIABLES).unwrap();
    let asked = std::cell::RefCell::new(Vec::new());
    let mut lookup = |label: &str, selector: Option<&str>| -> Result<Vec<String>> {
        asked
            .borrow_mut()
            .push((label.to_string(), selector.map(str::to_string)));
        Ok(match label {
            "zone" => vec!["west".to_string(), "east".to_string()],
            _ => vec!["shop".to_string(), "cart".to_string()],
        })
    };
    let values = variable_values(&dashboard, &[], &mut lookup).unwrap();
    let want: BTreeMap<String, String> = [
        // The first value in order; the second variable's query sees the first's value.
        ("zone", "east"),
        ("svc", "cart"),
        // All with an allValue; a multi-value as an escaped alternation; All without one.
        ("rule", ".*"),
        ("version", "(a|b\\\\.c)"),
        ("every", "(x|y)"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(values, want);
    assert_eq!(
        *asked.borrow(),
        vec![
            ("zone".to_string(), Some("up".to_string())),
            (
                "service".to_string(),
                Some("requests_total{zone=\"east\"}".to_string())
            )
        ]
    );

    let overrides = vec![
        ("rule".to_string(), "weights".to_string()),
        ("zone".to_string(), "north".to_string()),
        ("svc".to_string(), "All".to_string()),
    ];
    let values = variable_values(&dashboard, &overrides, &mut lookup).unwrap();
    assert_eq!(values["rule"], "weights");
    assert_eq!(values["zone"], "north");
    assert_eq!(values["svc"], "(cart|shop)");

    let unknown = vec![("nope".to_string(), "1".to_string())];
    let err = variable_values(&dashboard, &unknown, &mut lookup)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--var nope") && err.contains("rule"), "{err}");
}

#[test]
fn every_way_grafana_writes_a_variable_is_substituted_and_only_that() {
    let values: BTreeMap<String, String> = [("rule", "weights"), ("rule_set", "x")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        substitute_variables(
            r#"a{r=~"$rule",s="${rule}",t="${rule:regex}",u="[[rule]]",v="$rule_set",w="$ruler",x="end$"}"#,
            &values
        ),
        r#"a{r=~"weights",s="weights",t="weights",u="weights",v="x",w="$ruler",x="end$"}"#
    );
    let range = TimeRange {
        start: 0.0,
        end: 60.0,
        scrape_interval: 1.0,
    };
    let err = expand("up{a=\"$missing\"}", &values, &range, 100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("$missing"), "{err}");
    // A `$` that ends a regular expression is PromQL's, not a variable.
    assert_eq!(
        expand("up{a=~\"x$\"}", &values, &range, 100).unwrap(),
        "up{a=~\"x$\"}"
    );
}

#[test]
fn legends_follow_the_legend_format() {
    let labels: BTreeMap<String, String> = [("__name__", "m"), ("v", "canary"), ("r", "weights")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(legend(Some("{{v}} / {{r}}"), &labels), "canary / weights");
    assert_eq!(legend(Some("p99 {{ v }}"), &labels), "p99 canary");
    // A label the series lacks is empty, as in Grafana.
    assert_eq!(legend(Some("{{service}} {{v}}"), &labels), "canary");
    assert_eq!(legend(None, &labels), "m{r=\"weights\", v=\"canary\"}");
    assert_eq!(
        legend(Some("__auto"), &labels),
        "m{r=\"weights\", v=\"canary\"}"
    );
}

#[test]
fn values_are_written_in_the_panels_unit() {
    assert_eq!(format_value(0.186, "percentunit", None), "18.6%");
    assert_eq!(format_value(0.0, "percentunit", None), "0%");
    assert_eq!(format_value(253.2, "reqps", None), "253 req/s");
    assert_eq!(format_value(0.256, "ms", None), "0.256 ms");
    // Without set decimals, no trailing zeros (axis ticks 1, 1.5, 2).
    assert_eq!(format_value(1.0, "reqps", None), "1 req/s");
    assert_eq!(format_value(1.5, "ms", None), "1.5 ms");
    assert_eq!(format_value(2.0, "none", Some(2)), "2.00");
    assert_eq!(format_value(2_415_069_469.0, "none", Some(0)), "2415069469");
    assert_eq!(format_value(1.5, "bytes", Some(1)), "1.5 bytes");
    assert_eq!(format_value(f64::NAN, "ms", None), "NaN");
    assert_eq!(draw::clock(86_400.0 * 3.0 + 3_723.0), "01:02:03");
}

/// The texts of an SVG, and how many lines it draws.
fn read_svg(svg: &str) -> (Vec<String>, usize) {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    (texts, lines)
}

fn series(labels: &[(&str, &str)], values: &[f64]) -> Series {
    Series {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        points: values
            .iter()
            .enumerate()
            .map(|(i, v)| (1_000.0 + 10.0 * i as f64, *v))
            .collect(),
    }
}

#[test]
fn the_picture_draws_every_panel_of_the_shipped_dashboard() {
    let dashboard = shipped();
    let range = TimeRange {
        start: 1_000.0,
        end: 1_100.0,
        scrape_interval: 10.0,
    };
    // Two series a panel (an instant one for the table), the last panel left without data.
    let last = dashboard.panels.len() - 1;
    let data: Vec<Vec<Drawn>> = dashboard
        .panels
        .iter()
        .enumerate()
        .map(|(i, panel)| {
            if i == last {
                return Vec::new();
            }
            ["alpha", "beta"]
                .iter()
                .map(|name| Drawn {
                    legend: format!("{name} of {i}"),
                    series: if panel.kind == "table" {
                        series(&[("instance", name)], &[42.0])
                    } else {
                        series(&[], &[1.0, 2.0, f64::NAN, 3.0, 4.0])
                    },
                })
                .collect()
        })
        .collect();
    let svg = draw::render(&dashboard, &data, &range, "the subtitle").unwrap();
    let (texts, lines) = read_svg(&svg);
    for panel in &dashboard.panels {
        assert!(
            texts.contains(&panel.title),
            "no title {:?} in {texts:?}",
            panel.title
        );
    }
    assert!(texts.contains(&dashboard.title));
    assert!(texts.contains(&"the subtitle".to_string()));
    assert!(texts.contains(&"No data".to_string()), "{texts:?}");
    let drawn_series: Vec<usize> = (0..last)
        .filter(|i| dashboard.panels[*i].kind == "timeseries")
        .collect();
    for i in &drawn_series {
        for name in ["alpha", "beta"] {
            assert!(
                texts.contains(&format!("{name} of {i}")),
                "legend of panel {i}"
            );
        }
    }
    // Each time series is drawn as two lines (the NaN splits it), plus the axes' lines.
    assert!(lines >= drawn_series.len() * 2 * 2, "{lines} polylines");
}

#[test]
fn a_lone_point_is_drawn_as_a_dot() {
    let dashboard = shipped();
    let range = TimeRange {
        start: 1_000.0,
        end: 1_100.0,
        scrape_interval: 10.0,
    };
    let first = Drawn {
        legend: "one".to_string(),
        series: series(&[], &[5.0]),
    };
    let data: Vec<Vec<Drawn>> = (0..dashboard.panels.len())
        .map(|i| {
            if i == 0 {
                vec![first.clone()]
            } else {
                Vec::new()
            }
        })
        .collect();
    assert_eq!(dashboard.panels[0].kind, "timeseries");
    let svg = draw::render(&dashboard, &data, &range, "").unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let dots = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(dots, 1, "{svg}");
}

#[test]
fn a_table_panel_shows_its_labels_and_values() {
    let dashboard = shipped();
    let table = dashboard
        .panels
        .iter()
        .position(|p| p.kind == "table")
        .expect("the shipped dashboard has a table");
    let range = TimeRange {
        start: 0.0,
        end: 60.0,
        scrape_interval: 15.0,
    };
    let data: Vec<Vec<Drawn>> = (0..dashboard.panels.len())
        .map(|i| {
            if i != table {
                return Vec::new();
            }
            vec![Drawn {
                legend: String::new(),
                series: series(
                    &[
                        ("__name__", "hash"),
                        ("instance", "10.0.0.7:9901"),
                        ("job", "envoy"),
                    ],
                    &[3_391_779_236.0],
                ),
            }]
        })
        .collect();
    let svg = draw::render(&dashboard, &data, &range, "").unwrap();
    let (texts, _) = read_svg(&svg);
    for want in [
        "instance",
        "job",
        "Value",
        "10.0.0.7:9901",
        "envoy",
        "3391779236",
    ] {
        assert!(texts.contains(&want.to_string()), "no {want} in {texts:?}");
    }
    assert!(!texts.contains(&"__name__".to_string()));
}

#[test]
fn a_bad_grid_position_is_refused_naming_the_field() {
    let err = Dashboard::parse(
        r#"{"panels": [{"title": "a", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}},
        {"title": "b", "gridPos": {"x": 0, "y": 8, "h": 8}}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("panels[1].gridPos.w"), "{err}");
    let err = Dashboard::parse(r#"{"panels": [{"gridPos": {"x": 20, "y": 0, "w": 12, "h": 8}}]}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("panels[0].gridPos"), "{err}");
}
