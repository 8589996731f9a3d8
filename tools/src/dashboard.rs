//! A picture of a Grafana dashboard without Grafana: the dashboard's JSON read generically
//! (panels, `gridPos`, titles, targets' `expr` and `legendFormat`, unit, templating
//! variables), every query run against a real Prometheus (canaryctl's client of its HTTP API,
//! `canary_control::metrics::prometheus`), and the grid drawn to SVG
//! ([`draw`]). Nothing here knows the canary filter's metric or label names: they come from the
//! dashboard, so a renamed label changes the picture, not this code.

pub mod draw;

use std::collections::BTreeMap;
use std::path::Path;

use canary_control::metrics::prometheus::Prometheus;
use serde_json::Value;

use crate::Result;

/// A dashboard as the renderer needs it.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// `title`.
    pub title: String,
    /// `templating.list`, in order (a variable may use the ones before it).
    pub variables: Vec<Variable>,
    /// `panels`, a collapsed row's own panels after the row.
    pub panels: Vec<Panel>,
}

/// A templating variable.
#[derive(Debug, Clone)]
pub struct Variable {
    /// `name`, as queries write it after `$`.
    pub name: String,
    /// `type`: `query`, `custom`, `constant`, `textbox`, `interval`, `datasource`, …
    pub kind: String,
    /// `current.value`, several for a multi-value variable; `$__all` for All.
    pub current: Vec<String>,
    /// `allValue`, what All stands for in a query when the dashboard says.
    pub all_value: Option<String>,
    /// `options[].value`, when the dashboard stores them.
    pub options: Vec<String>,
    /// `query` (or `query.query`): for a query variable, e.g. `label_values(metric, label)`.
    pub query: Option<String>,
}

/// A panel at its place in the 24-column grid.
#[derive(Debug, Clone)]
pub struct Panel {
    /// `id`.
    pub id: u64,
    /// `type`: `timeseries`, `stat`, `table`, `row`, …
    pub kind: String,
    /// `title`.
    pub title: String,
    /// `gridPos`.
    pub grid: GridPos,
    /// `fieldConfig.defaults.unit` (`""` when unset).
    pub unit: String,
    /// `fieldConfig.defaults.decimals`.
    pub decimals: Option<usize>,
    /// `options.legend.calcs`: the values the legend shows per series.
    pub legend_calcs: Vec<String>,
    /// `targets`, those not hidden.
    pub targets: Vec<Target>,
}

/// A panel's place: columns `x..x+w` of 24, rows `y..y+h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridPos {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in columns.
    pub w: u32,
    /// Height in rows.
    pub h: u32,
}

/// One query of a panel.
#[derive(Debug, Clone)]
pub struct Target {
    /// `refId`.
    pub ref_id: String,
    /// `expr`, variables not yet substituted.
    pub expr: String,
    /// `legendFormat` (`{{label}}` placeholders).
    pub legend_format: Option<String>,
    /// `instant`, or `format: table`: one value per series at the end of the range.
    pub instant: bool,
}

impl Dashboard {
    /// Reads a dashboard file.
    pub fn read(path: &Path) -> Result<Dashboard> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read the dashboard {}: {err}", path.display()))?;
        Dashboard::parse(&text).map_err(|err| format!("{}: {err}", path.display()).into())
    }

    /// Parses a dashboard's JSON (as Grafana exports it). Errors name the field.
    pub fn parse(text: &str) -> Result<Dashboard> {
        let doc: Value = serde_json::from_str(text)?;
        let title = doc["title"].as_str().unwrap_or("").to_string();
        let mut variables = Vec::new();
        for (index, variable) in doc["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            variables.push(parse_variable(
                variable,
                &format!("templating.list[{index}]"),
            )?);
        }
        let mut panels = Vec::new();
        let list = doc["panels"]
            .as_array()
            .ok_or("panels: missing, or not a list")?;
        for (index, panel) in list.iter().enumerate() {
            let path = format!("panels[{index}]");
            panels.push(parse_panel(panel, &path)?);
            // A collapsed row keeps its panels inside it; they are drawn all the same.
            for (inner, child) in panel["panels"].as_array().into_iter().flatten().enumerate() {
                panels.push(parse_panel(child, &format!("{path}.panels[{inner}]"))?);
            }
        }
        Ok(Dashboard {
            title,
            variables,
            panels,
        })
    }
}

fn parse_variable(value: &Value, path: &str) -> Result<Variable> {
    let name = value["name"]
        .as_str()
        .ok_or_else(|| format!("{path}.name: missing, or not a string"))?
        .to_string();
    let current = match &value["current"]["value"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let query = match &value["query"] {
        Value::String(query) => Some(query.clone()),
        Value::Object(object) => object
            .get("query")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    Ok(Variable {
        name,
        kind: value["type"].as_str().unwrap_or("query").to_string(),
        current,
        all_value: value["allValue"]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        options: value["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|option| option["value"].as_str().map(str::to_string))
            .collect(),
        query,
    })
}

fn parse_panel(value: &Value, path: &str) -> Result<Panel> {
    let grid = &value["gridPos"];
    let cell = |field: &str| -> Result<u32> {
        grid[field]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{path}.gridPos.{field}: missing, or not a whole number").into())
    };
    let grid = GridPos {
        x: cell("x")?,
        y: cell("y")?,
        w: cell("w")?,
        h: cell("h")?,
    };
    if grid.w == 0 || grid.x + grid.w > 24 {
        return Err(format!(
            "{path}.gridPos: columns {}..{} are not within 0..24",
            grid.x,
            grid.x + grid.w
        )
        .into());
    }
    let mut targets = Vec::new();
    for (index, target) in value["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if target["hide"].as_bool() == Some(true) {
            continue;
        }
        let expr = target["expr"]
            .as_str()
            .ok_or_else(|| format!("{path}.targets[{index}].expr: missing, or not a string"))?;
        targets.push(Target {
            ref_id: target["refId"].as_str().unwrap_or("").to_string(),
            expr: expr.to_string(),
            legend_format: target["legendFormat"].as_str().map(str::to_string),
            instant: target["instant"].as_bool() == Some(true)
                || target["format"].as_str() == Some("table"),
        });
    }
    let defaults = &value["fieldConfig"]["defaults"];
    Ok(Panel {
        id: value["id"].as_u64().unwrap_or(0),
        kind: value["type"].as_str().unwrap_or("timeseries").to_string(),
        title: value["title"].as_str().unwrap_or("").to_string(),
        grid,
        unit: defaults["unit"].as_str().unwrap_or("").to_string(),
        decimals: defaults["decimals"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok()),
        legend_calcs: value["options"]["legend"]["calcs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|calc| calc.as_str().map(str::to_string))
            .collect(),
        targets,
    })
}

/// The time a picture covers and Grafana's interval variables for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRange {
    /// Start, Unix seconds.
    pub start: f64,
    /// End, Unix seconds.
    pub end: f64,
    /// The Prometheus data source's scrape interval in seconds (Grafana's "min interval"
    /// floor; 15 s when the data source does not say).
    pub scrape_interval: f64,
}

impl TimeRange {
    /// `$__interval` in seconds for a panel `points` pixels wide: the range over the points,
    /// never under the scrape interval, in whole milliseconds (as Grafana computes it).
    pub fn interval(&self, points: u32) -> f64 {
        let raw = (self.end - self.start) / f64::from(points.max(1));
        (raw.max(self.scrape_interval) * 1000.0).round() / 1000.0
    }

    /// `$__rate_interval` in seconds: the larger of `$__interval` plus one scrape interval and
    /// four scrape intervals (Grafana's definition).
    pub fn rate_interval(&self, points: u32) -> f64 {
        (self.interval(points) + self.scrape_interval).max(4.0 * self.scrape_interval)
    }
}

/// A duration as PromQL writes it: whole seconds as `15s`, else milliseconds as `1500ms`.
pub fn promql_duration(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round();
    if millis % 1000.0 == 0.0 {
        format!("{}s", millis / 1000.0)
    } else {
        format!("{millis}ms")
    }
}

/// Answers `label_values(selector, label)`: `(label, selector)` to the label's values.
pub type LabelValues<'a> = dyn FnMut(&str, Option<&str>) -> Result<Vec<String>> + 'a;

/// Each variable's value as queries see it, in the dashboard's order: the `overrides`
/// (`--var name=value`; `All` or `$__all` for all), else the saved current value, else the
/// first option (for a query variable, the first of its `label_values` in Prometheus, which
/// `lookup` answers: `(label, match selector)` to values). All stands for `allValue`, else for
/// every value as a regular expression, as Grafana writes it for Prometheus.
pub fn variable_values(
    dashboard: &Dashboard,
    overrides: &[(String, String)],
    lookup: &mut LabelValues,
) -> Result<BTreeMap<String, String>> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for name in overrides.iter().map(|(name, _)| name) {
        if !dashboard.variables.iter().any(|v| &v.name == name) {
            let known: Vec<&str> = dashboard
                .variables
                .iter()
                .map(|v| v.name.as_str())
                .collect();
            return Err(format!(
                "--var {name}: the dashboard has no such variable (it has {known:?})"
            )
            .into());
        }
    }
    for variable in &dashboard.variables {
        if variable.kind == "datasource" {
            continue;
        }
        let chosen: Vec<String> = match overrides
            .iter()
            .rev()
            .find(|(name, _)| *name == variable.name)
        {
            Some((_, value)) => vec![value.clone()],
            None => variable.current.clone(),
        };
        let all = chosen.iter().any(|v| v == "$__all" || v == "All");
        let value = if all {
            match &variable.all_value {
                Some(all_value) => all_value.clone(),
                None => regex_of(&every_value(variable, &values, lookup)?),
            }
        } else if chosen.is_empty() || chosen.iter().all(String::is_empty) {
            let every = every_value(variable, &values, lookup)?;
            every.into_iter().next().ok_or_else(|| {
                format!(
                    "variable {}: no value saved, and none to choose from (give --var {}=VALUE)",
                    variable.name, variable.name
                )
            })?
        } else if chosen.len() == 1 {
            chosen.concat()
        } else {
            regex_of(&chosen)
        };
        values.insert(variable.name.clone(), value);
    }
    Ok(values)
}

/// Every value a variable can take: its stored options, its `custom`/`interval` list, or its
/// query's label values.
fn every_value(
    variable: &Variable,
    known: &BTreeMap<String, String>,
    lookup: &mut LabelValues,
) -> Result<Vec<String>> {
    if !variable.options.is_empty() {
        return Ok(variable
            .options
            .iter()
            .filter(|v| *v != "$__all")
            .cloned()
            .collect());
    }
    let query = variable.query.clone().unwrap_or_default();
    match variable.kind.as_str() {
        "custom" | "interval" => Ok(query
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()),
        "constant" | "textbox" => Ok(vec![query]),
        _ => {
            let query = substitute_variables(&query, known);
            let (label, selector) = parse_label_values(&query).ok_or_else(|| {
                format!(
                    "variable {}: its query {query:?} is not label_values(…): give --var {}=VALUE",
                    variable.name, variable.name
                )
            })?;
            let mut found = lookup(&label, selector.as_deref())?;
            found.sort();
            Ok(found)
        }
    }
}

/// `label_values(selector, label)` or `label_values(label)`: the label and the selector.
pub fn parse_label_values(query: &str) -> Option<(String, Option<String>)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => {
            Some((label.trim().to_string(), Some(selector.trim().to_string())))
        }
        None => Some((inner.trim().to_string(), None)),
    }
}

/// Several values as one regular expression, escaped (Grafana's multi-value format for
/// Prometheus).
fn regex_of(values: &[String]) -> String {
    let escaped: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    format!("({})", escaped.join("|"))
}

fn regex_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            // Inside a PromQL string a backslash is itself escaped.
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// `text` with `$name`, `${name}`, `${name:format}` and `[[name]]` replaced by the variables'
/// values (longest names first, a name ending where no word character follows).
pub fn substitute_variables(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let mut out = text.to_string();
    for name in names {
        let Some(value) = values.get(name) else {
            continue;
        };
        out = out.replace(&format!("[[{name}]]"), value);
        out = out.replace(&format!("${{{name}}}"), value);
        while let Some(start) = out.find(&format!("${{{name}:")) {
            let Some(end) = out.get(start..).and_then(|rest| rest.find('}')) else {
                break;
            };
            out.replace_range(start..start + end + 1, value);
        }
        let plain = format!("${name}");
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&plain) {
            let after = rest.get(at + plain.len()..).unwrap_or("");
            let continues = after
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            result.push_str(rest.get(..at).unwrap_or(""));
            result.push_str(if continues { &plain } else { value });
            rest = after;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// A target's query as Prometheus runs it: Grafana's built-in interval variables for a panel
/// `points` pixels wide, then the dashboard's variables. An error names any `$variable` left.
pub fn expand(
    expr: &str,
    values: &BTreeMap<String, String>,
    range: &TimeRange,
    points: u32,
) -> Result<String> {
    let span = range.end - range.start;
    let builtins: BTreeMap<String, String> = [
        (
            "__rate_interval",
            promql_duration(range.rate_interval(points)),
        ),
        (
            "__interval_ms",
            format!("{}", (range.interval(points) * 1000.0).round()),
        ),
        ("__interval", promql_duration(range.interval(points))),
        ("__range_ms", format!("{}", (span * 1000.0).round())),
        ("__range_s", format!("{}", span.round())),
        ("__range", promql_duration(span.round())),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    let expanded = substitute_variables(&substitute_variables(expr, &builtins), values);
    if let Some(at) = expanded.find('$') {
        let name: String = expanded
            .get(at + 1..)
            .unwrap_or("")
            .chars()
            .skip_while(|c| *c == '{')
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            return Err(format!("no value for the variable ${name} in {expr:?}").into());
        }
    }
    Ok(expanded)
}

/// A series' legend: `legendFormat` with each `{{label}}` replaced by the series' value of it
/// (nothing for a label the series lacks, as Grafana does), spaces collapsed; without a
/// format, the series' labels as Prometheus writes them.
pub fn legend(format: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    let Some(format) = format.filter(|f| !f.is_empty() && *f != "__auto") else {
        let name = labels.get("__name__").cloned().unwrap_or_default();
        let pairs: Vec<String> = labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        return if pairs.is_empty() {
            name
        } else {
            format!("{name}{{{}}}", pairs.join(", "))
        };
    };
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find("{{") {
        out.push_str(rest.get(..open).unwrap_or(""));
        let after = rest.get(open + 2..).unwrap_or("");
        match after.find("}}") {
            Some(close) => {
                let label = after.get(..close).unwrap_or("").trim();
                out.push_str(labels.get(label).map_or("", String::as_str));
                rest = after.get(close + 2..).unwrap_or("");
            }
            None => {
                out.push_str(rest.get(open..).unwrap_or(""));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every panel's series, in panel order: each target's query (variables substituted) as a
/// `query_range` over `range`, or an instant query at its end for an instant or table target.
/// A query that returns no series is an error naming the panel, the target and the query, unless
/// `allow_empty` (the panel then says "No data", as Grafana's does).
pub fn fetch(
    dashboard: &Dashboard,
    prometheus: &Prometheus,
    values: &BTreeMap<String, String>,
    range: &TimeRange,
    allow_empty: bool,
) -> Result<Vec<Vec<draw::Drawn>>> {
    let mut panels = Vec::new();
    for panel in &dashboard.panels {
        let points = draw::chart_points(panel.grid);
        let mut drawn = Vec::new();
        for target in &panel.targets {
            let expr = expand(&target.expr, values, range, points).map_err(|err| {
                format!("panel {:?}, query {}: {err}", panel.title, target.ref_id)
            })?;
            let series = if target.instant {
                prometheus.query_at(&expr, range.end)
            } else {
                prometheus.query_range(&expr, range.start, range.end, range.interval(points))
            }
            .map_err(|err| {
                format!(
                    "panel {:?}, query {}: {expr}\n{err}",
                    panel.title, target.ref_id
                )
            })?;
            if series.is_empty() && !allow_empty {
                return Err(format!(
                    "panel {:?} (id {}), query {}: no series from {} to {} UTC for\n  {expr}",
                    panel.title,
                    panel.id,
                    target.ref_id,
                    draw::clock(range.start),
                    draw::clock(range.end)
                )
                .into());
            }
            for series in series {
                drawn.push(draw::Drawn {
                    legend: legend(target.legend_format.as_deref(), &series.labels),
                    series,
                });
            }
        }
        panels.push(drawn);
    }
    Ok(panels)
}

/// The SVG of `dashboard` with the data of `prometheus` over `range`, the
/// variables as `overrides` set them (else as the dashboard saved them).
pub fn picture(
    dashboard: &Dashboard,
    prometheus: &Prometheus,
    overrides: &[(String, String)],
    range: &TimeRange,
    allow_empty: bool,
) -> Result<String> {
    let values = variable_values(dashboard, overrides, &mut |label, selector| {
        Ok(prometheus.label_values(label, selector)?)
    })?;
    let data = fetch(dashboard, prometheus, &values, range, allow_empty)?;
    let shown: Vec<String> = dashboard
        .variables
        .iter()
        .filter_map(|v| {
            values
                .get(&v.name)
                .map(|value| format!("{} = {value}", v.name))
        })
        .collect();
    let subtitle = format!(
        "{} to {} UTC ({} s){}{}",
        draw::clock(range.start),
        draw::clock(range.end),
        (range.end - range.start).round(),
        if shown.is_empty() { "" } else { "   " },
        shown.join("   ")
    );
    draw::render(dashboard, &data, range, &subtitle)
}
