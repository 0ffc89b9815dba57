//! The admin listener's live page (`GET /`) and its figures
//! (`GET /page.json`): traffic by VirtualService with configured weight
//! beside observed share, destinations with policy, endpoints, ejections
//! and circuit breakers, the configuration status, and an explain form.
//!
//! `history` keeps the last minutes from counters the request path already
//! updates, sampled once a second by a task of the admin listener;
//! `view` gathers what to show; `html` renders it (pure, escaped).

pub mod history;
pub mod html;
pub mod view;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use history::History;

/// The page's state: the sampled history.
#[derive(Default)]
pub struct Page {
    history: Mutex<History>,
}

impl Page {
    /// Start sampling `shared` once a second until `shutdown`.
    pub fn start(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) -> Arc<Page> {
        let page = Arc::new(Page::default());
        let sampler = page.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => sampler.sample(&shared),
                    _ = shutdown.changed() => break,
                }
            }
        });
        page
    }

    pub fn sample(&self, shared: &Shared) {
        view::sample(shared, &mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The page, with the explain form's answer when `query` has a `url`.
    pub fn html(&self, shared: &Shared, query: &str) -> String {
        let form = explain_form(shared, query);
        let v = view::gather(shared, &self.lock());
        html::render(&v, &form)
    }

    /// The live figures the page's script polls.
    pub fn json(&self, shared: &Shared) -> serde_json::Value {
        html::figures_json(&view::gather(shared, &self.lock()))
    }
}

/// The explain form's fields from the page's query (`url`, `method`,
/// `headers`: one `Name: value` per line), answered on the live
/// configuration by the admin API's own `/explain` code.
fn explain_form(shared: &Shared, query: &str) -> html::ExplainForm {
    let mut form = html::ExplainForm::default();
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "url" => form.url = v,
            "method" => form.method = v,
            "headers" => form.headers = v,
            _ => {}
        }
    }
    if form.url.is_empty() {
        return form;
    }
    let headers: Vec<String> = form
        .headers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let method = if form.method.trim().is_empty() {
        "GET".to_string()
    } else {
        form.method.trim().to_string()
    };
    form.result = Some(
        super::admin::explain_request(Some(form.url.clone()), &method, &headers).map(|req| {
            let (report, live) = super::admin::explain_live(shared, &req);
            let mut text = crate::explain::render_text(&report);
            for d in live
                .get("destinations")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
            {
                let Some(hosts) = d.get("endpoint_health").and_then(|h| h.as_array()) else {
                    continue;
                };
                text.push_str(&format!(
                    "Live endpoints of {}:\n",
                    d.get("cluster").and_then(|c| c.as_str()).unwrap_or("")
                ));
                for h in hosts {
                    text.push_str(&format!(
                        "  {}  {}  active {}  ejections {}\n",
                        h["address"].as_str().unwrap_or(""),
                        h["health"].as_str().unwrap_or(""),
                        h["active_requests"],
                        h["ejections"]
                    ));
                }
            }
            text
        }),
    );
    form
}
