//! The page as HTML, and its live figures as JSON. Pure: a [`View`] in,
//! text out. Every string that comes from configuration or a request goes
//! through [`esc`]; figures are addressed by generated ids (`m0-1-0.rps`),
//! never by names, so the script only ever sets `textContent`.

use std::fmt::Write as _;

use super::history::{STEP, Stats, WINDOW};
use super::view::{ClusterView, DestView, GatewayView, VhostView, View, limit};

/// HTML-escape text for an element body or a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The explain form's fields and, when it was submitted, its answer.
#[derive(Default)]
pub struct ExplainForm {
    pub url: String,
    pub method: String,
    pub headers: String,
    /// `strait explain`'s text, or why the request could not be explained.
    pub result: Option<Result<String, String>>,
}

/// One live figure: its id, its text and its CSS class.
pub struct Figure {
    pub id: String,
    pub text: String,
    pub class: &'static str,
}

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

pub fn render(v: &View, form: &ExplainForm) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>strait</title><style>{STYLE}</style></head>\
         <body data-version=\"{}\">\n<header><h1>strait</h1><span>configuration version \
         <b>{}</b>, applied {}</span><span id=\"window\">{}</span>\
         <nav><a href=\"#traffic\">Traffic</a> <a href=\"#destinations\">Destinations</a> \
         <a href=\"#configuration\">Configuration</a> <a href=\"#explain\">Explain</a> \
         <a href=\"/stats/prometheus\">/stats/prometheus</a> <a href=\"/config_dump\">/config_dump</a></nav></header>\n",
        v.version,
        v.version,
        applied(&v.applied_at),
        window_text(v.seconds)
    );
    h.push_str("<section id=\"traffic\"><h2>Traffic, by VirtualService</h2>\n");
    if v.routes.is_empty() {
        h.push_str("<p class=\"dim\">No routes: the configuration has no services.</p>\n");
    }
    for vh in &v.routes {
        vhost(&mut h, vh);
    }
    h.push_str("</section>\n");
    if !v.gateways.is_empty() {
        h.push_str("<section id=\"gateways\"><h2>Gateway listeners</h2>\n");
        for g in &v.gateways {
            gateway(&mut h, g);
        }
        h.push_str("</section>\n");
    }
    h.push_str("<section id=\"destinations\"><h2>Destinations</h2>\n");
    for c in &v.clusters {
        cluster(&mut h, c);
    }
    h.push_str("</section>\n");
    configuration(&mut h, v);
    explain(&mut h, form);
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
    h
}

fn applied(at: &str) -> String {
    if at.is_empty() {
        "at start".into()
    } else {
        esc(at)
    }
}

fn window_text(seconds: u64) -> String {
    format!(
        "figures over the last {seconds}s, series over {}m",
        WINDOW / 60
    )
}

fn vhost(h: &mut String, vh: &VhostView) {
    let _ = write!(
        h,
        "<article class=\"vhost\"><h3>{}{}</h3>\n<table><thead><tr><th>route</th><th>destination</th>\
         <th class=\"n\">weight</th><th class=\"n\">observed</th><th class=\"n\">requests</th>\
         <th class=\"n\">rps</th><th class=\"n\" title=\"the destination's, from every route to it\">errors</th><th>by flag</th>\
         <th class=\"n\">p50</th><th class=\"n\">p99</th><th title=\"the destination's requests (errors in red)\">last {}m</th></tr></thead><tbody>\n",
        esc(&vh.name),
        match &vh.virtual_service {
            Some(vs) => format!(" <small>VirtualService {}</small>", esc(vs)),
            None => " <small>(no VirtualService: the service's default route)</small>".into(),
        },
        WINDOW / 60
    );
    for r in &vh.routes {
        let title = format!(
            "{}{}<div class=\"dim\">{}</div>",
            esc(&r.name),
            r.index
                .map(|i| format!(" <small>http[{i}]</small>"))
                .unwrap_or_default(),
            esc(&r.matches)
        );
        if let Some(a) = &r.action {
            let _ = writeln!(
                h,
                "<tr class=\"first\"><td>{title}</td><td colspan=\"10\">{}</td></tr>",
                esc(a)
            );
            continue;
        }
        let rows = r.destinations.len().max(1);
        for (i, d) in r.destinations.iter().enumerate() {
            h.push_str(if i == 0 {
                "<tr class=\"first\">"
            } else {
                "<tr>"
            });
            if i == 0 {
                let _ = write!(h, "<td rowspan=\"{rows}\">{title}</td>");
            }
            destination(h, d);
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</tbody></table></article>\n");
}

fn destination(h: &mut String, d: &DestView) {
    let figs = dest_figures(d);
    let f = |name: &str| {
        let id = format!("{}.{name}", d.id);
        let fig = figs.iter().find(|f| f.id == id);
        format!(
            "<td id=\"{}\" class=\"{}\">{}</td>",
            esc(&id),
            fig.map_or("", |f| f.class),
            esc(fig.map_or("", |f| &f.text))
        )
    };
    let _ = write!(
        h,
        "<td>{}{}</td><td class=\"n\">{:.0}%</td>{}{}{}{}{}{}{}<td>{}</td>",
        esc(&d.cluster),
        if d.missing {
            " <span class=\"bad\">no such cluster: 503 NC</span>"
        } else {
            ""
        },
        d.weight,
        f("share"),
        f("picks"),
        f("rps"),
        f("err"),
        f("flags"),
        f("p50"),
        f("p99"),
        spark(&format!("{}.spark", d.id), &d.stats)
    );
}

fn gateway(h: &mut String, g: &GatewayView) {
    let _ = write!(
        h,
        "<article><h3>port {} <small>{}</small></h3><ul>",
        g.port,
        esc(&g.protocol)
    );
    for s in &g.servers {
        let _ = write!(h, "<li>{}</li>", esc(s));
    }
    for t in &g.tcp {
        let _ = write!(h, "<li>{}</li>", esc(t));
    }
    h.push_str("</ul>\n");
    for vh in &g.routes {
        vhost(h, vh);
    }
    h.push_str("</article>\n");
}

fn cluster(h: &mut String, c: &ClusterView) {
    let figs = cluster_figures(c);
    let f = |name: &str| {
        let id = format!("{}.{name}", c.id);
        let fig = figs.iter().find(|f| f.id == id);
        format!(
            "<span id=\"{}\" class=\"{}\">{}</span>",
            esc(&id),
            fig.map_or("", |f| f.class),
            esc(fig.map_or("", |f| &f.text))
        )
    };
    let _ = write!(
        h,
        "<article class=\"cluster\"><h3>{}</h3><div class=\"dim\">{}{}</div>\n\
         <div class=\"figs\">{} rps · errors {} {} · p50 {} · p99 {} {}</div>\n<div class=\"breakers\">",
        esc(&c.name),
        c.destination_rule
            .as_ref()
            .map(|d| format!("DestinationRule {} · ", esc(d)))
            .unwrap_or_default(),
        esc(&c.policy),
        f("rps"),
        f("err"),
        f("flags"),
        f("p50"),
        f("p99"),
        spark(&format!("{}.spark", c.id), &c.stats)
    );
    for (i, b) in c.breakers.iter().enumerate() {
        let _ = write!(
            h,
            "<span class=\"breaker\">{} {}</span> ",
            b.name,
            f(&format!("b{i}"))
        );
    }
    h.push_str(
        "</div>\n<table><thead><tr><th>endpoint</th><th>labels</th><th class=\"n\">weight</th>\
         <th>health</th><th class=\"n\">active</th><th class=\"n\">ejections</th><th>ejection</th></tr></thead><tbody>\n",
    );
    for (j, e) in c.endpoints.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&e.address),
            esc(&e.labels),
            e.weight,
            f(&format!("e{j}.health")),
            f(&format!("e{j}.active")),
            f(&format!("e{j}.ejections")),
            f(&format!("e{j}.ejection"))
        );
    }
    h.push_str("</tbody></table></article>\n");
}

fn configuration(h: &mut String, v: &View) {
    let _ = writeln!(
        h,
        "<section id=\"configuration\"><h2>Configuration</h2><p>version <b>{}</b>, applied {}</p><p>sources: {}</p>",
        v.version,
        applied(&v.applied_at),
        if v.paths.is_empty() {
            "none (started from a compiled snapshot)".to_string()
        } else {
            v.paths
                .iter()
                .map(|p| esc(p))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    match &v.rejected {
        None => h.push_str("<p class=\"ok\">No change rejected since start.</p>\n"),
        Some((at, errors)) => {
            let _ = write!(
                h,
                "<p class=\"bad\">Last rejected change, {} (the previous configuration kept serving):</p><pre>",
                esc(at)
            );
            for e in errors {
                let _ = writeln!(h, "{}", esc(e));
            }
            h.push_str("</pre>\n");
        }
    }
    h.push_str("</section>\n");
}

fn explain(h: &mut String, form: &ExplainForm) {
    let method = if form.method.is_empty() {
        "GET"
    } else {
        &form.method
    };
    let _ = writeln!(
        h,
        "<section id=\"explain\"><h2>Explain</h2><p class=\"dim\">What <code>strait explain</code> says about a request, on the live configuration.</p>\
         <form method=\"get\" action=\"/#explain\"><label>URL <input name=\"url\" size=\"50\" value=\"{}\" placeholder=\"http://reviews:9080/reviews/1\"></label> \
         <label>method <input name=\"method\" size=\"6\" value=\"{}\"></label><br>\
         <label>headers, one per line <textarea name=\"headers\" rows=\"2\" cols=\"50\" placeholder=\"end-user: jason\">{}</textarea></label> \
         <button>explain</button></form>",
        esc(&form.url),
        esc(method),
        esc(&form.headers)
    );
    match &form.result {
        None => {}
        Some(Ok(text)) => {
            let _ = writeln!(h, "<pre id=\"explained\">{}</pre>", esc(text));
        }
        Some(Err(e)) => {
            let _ = writeln!(h, "<pre id=\"explained\" class=\"bad\">{}</pre>", esc(e));
        }
    }
    h.push_str("</section>\n");
}

/// An inline SVG time series of requests (and errors in red).
fn spark(id: &str, s: &Stats) -> String {
    let (p, e) = spark_points(s);
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 120 24\" width=\"120\" height=\"24\" aria-label=\"requests per {STEP}s\">\
         <polyline id=\"{id}\" points=\"{p}\"/><polyline id=\"{id}.e\" class=\"e\" points=\"{e}\"/></svg>",
        id = esc(id)
    )
}

/// The polylines' points for requests and errors, on one scale.
pub fn spark_points(s: &Stats) -> (String, String) {
    let max = s.series.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = s.series.len().max(2) - 1;
    let pts = |series: &[u64]| {
        series
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "{:.1},{:.1}",
                    120.0 * i as f64 / n as f64,
                    23.0 - 22.0 * *v as f64 / max
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (pts(&s.series), pts(&s.error_series))
}

fn stats_figures(prefix: &str, s: &Stats, out: &mut Vec<Figure>) {
    let ms = |v: Option<f64>| match v {
        Some(v) if v < 10.0 => format!("{v:.1}ms"),
        Some(v) => format!("{v:.0}ms"),
        None => "–".into(),
    };
    let fig = |name: &str, text: String, class: &'static str| Figure {
        id: format!("{prefix}.{name}"),
        text,
        class,
    };
    out.push(fig("rps", format!("{:.1}", s.rps()), "n"));
    out.push(fig(
        "err",
        if s.requests == 0 {
            "–".into()
        } else {
            format!("{:.1}%", 100.0 * s.error_rate())
        },
        if s.errors > 0 { "n bad" } else { "n" },
    ));
    out.push(fig(
        "flags",
        s.by_flags
            .iter()
            .map(|(f, n)| {
                if f.is_empty() {
                    format!("5xx {n}")
                } else {
                    format!("{f} {n}")
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        if s.errors > 0 { "bad" } else { "" },
    ));
    out.push(fig("p50", ms(s.p50), "n"));
    out.push(fig("p99", ms(s.p99), "n"));
}

fn dest_figures(d: &DestView) -> Vec<Figure> {
    let mut out = vec![
        Figure {
            id: format!("{}.share", d.id),
            text: d.share.map_or("–".into(), |s| format!("{s:.1}%")),
            class: "n share",
        },
        Figure {
            id: format!("{}.picks", d.id),
            text: d.picks.to_string(),
            class: "n",
        },
    ];
    stats_figures(&d.id, &d.stats, &mut out);
    // The route's own rate; errors and latency are the destination's.
    if let Some(f) = out.iter_mut().find(|f| f.id.ends_with(".rps")) {
        f.text = format!("{:.1}", d.picks as f64 / d.stats.seconds.max(1) as f64);
    }
    out
}

fn cluster_figures(c: &ClusterView) -> Vec<Figure> {
    let mut out = Vec::new();
    stats_figures(&c.id, &c.stats, &mut out);
    for (i, b) in c.breakers.iter().enumerate() {
        out.push(Figure {
            id: format!("{}.b{i}", c.id),
            text: format!("{} / {}", b.used, limit(b.limit)),
            class: if b.limit > 0 && b.used >= b.limit {
                "bad"
            } else {
                ""
            },
        });
    }
    for (j, e) in c.endpoints.iter().enumerate() {
        let id = |n: &str| format!("{}.e{j}.{n}", c.id);
        out.push(Figure {
            id: id("health"),
            text: if e.ejected { "ejected" } else { "healthy" }.into(),
            class: if e.ejected { "bad" } else { "ok" },
        });
        out.push(Figure {
            id: id("active"),
            text: e.active.to_string(),
            class: "",
        });
        out.push(Figure {
            id: id("ejections"),
            text: e.ejections.to_string(),
            class: "",
        });
        out.push(Figure {
            id: id("ejection"),
            text: e.ejection.clone().unwrap_or_default(),
            class: if e.ejection.is_some() { "bad" } else { "" },
        });
    }
    out
}

/// The live figures for the script: `{version, window, text, class, points}`.
pub fn figures_json(v: &View) -> serde_json::Value {
    let mut text = serde_json::Map::new();
    let mut class = serde_json::Map::new();
    let mut points = serde_json::Map::new();
    let mut add = |figs: Vec<Figure>| {
        for f in figs {
            class.insert(f.id.clone(), f.class.into());
            text.insert(f.id, f.text.into());
        }
    };
    let mut spark_of = |id: &str, s: &Stats| {
        let (p, e) = spark_points(s);
        points.insert(format!("{id}.spark"), p.into());
        points.insert(format!("{id}.spark.e"), e.into());
    };
    let gateway_vhosts = v.gateways.iter().flat_map(|g| g.routes.iter());
    for vh in v.routes.iter().chain(gateway_vhosts) {
        for r in &vh.routes {
            for d in &r.destinations {
                add(dest_figures(d));
                spark_of(&d.id, &d.stats);
            }
        }
    }
    for c in &v.clusters {
        add(cluster_figures(c));
        spark_of(&c.id, &c.stats);
    }
    serde_json::json!({
        "version": v.version,
        "window": window_text(v.seconds),
        "text": text,
        "class": class,
        "points": points,
    })
}

#[cfg(test)]
mod tests;
