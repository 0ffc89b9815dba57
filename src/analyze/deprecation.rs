//! Deprecated fields (`pkg/config/analysis/analyzers/deprecation`).

use super::message::DEPRECATED;
use super::{Analyzer, Context, Message};

/// IST0002 for deprecated or ignored fields of VirtualServices and Sidecars.
pub struct DeprecationAnalyzer;

impl Analyzer for DeprecationAnalyzer {
    fn name(&self) -> &'static str {
        "deprecation.DeprecationAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks for deprecated Istio types and fields"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for vs in &ctx.config.virtual_services {
            for (i, route) in vs.spec.http.iter().enumerate() {
                let percent = route
                    .fault
                    .as_ref()
                    .and_then(|f| f.delay.as_ref())
                    .and_then(|d| d.percent)
                    .unwrap_or(0);
                if percent > 0 {
                    out.push(Message::new(
                        &DEPRECATED,
                        vs.reference(),
                        Some(format!("spec.http[{i}].fault.delay.percent")),
                        "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage".to_string(),
                    ));
                }
            }
        }
        for sc in &ctx.config.sidecars {
            let egress_proxy = sc
                .spec
                .outbound_traffic_policy
                .as_ref()
                .and_then(|o| o.egress_proxy.as_ref());
            if egress_proxy.is_some() {
                out.push(Message::new(
                    &DEPRECATED,
                    sc.reference(),
                    Some("spec.outboundTrafficPolicy.egressProxy".to_string()),
                    "Deprecated: OutboundTrafficPolicy.EgressProxy ignored".to_string(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::MeshConfig;
    use crate::load::{LoadOptions, load_str};

    fn run(yaml: &str) -> Vec<String> {
        let config = load_str(
            yaml,
            "t.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        let mesh = MeshConfig::default();
        let ctx = Context::new(&config, &mesh);
        let mut out = Vec::new();
        DeprecationAnalyzer.analyze(&ctx, &mut out);
        out.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn delay_percent_and_egress_proxy_are_deprecated() {
        let out = run(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: pp}\nspec:\n  hosts: [pp]\n  http:\n  - fault:\n      delay: {percent: 50, fixedDelay: 1s}\n    route: [{destination: {host: pp}}]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: example, port: {number: 9080}}\n",
        );
        assert_eq!(
            out,
            vec![
                "Warning [IST0002] (VirtualService default/pp t.yaml:8) Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage".to_string(),
                "Warning [IST0002] (Sidecar default/s t.yaml:17) Deprecated: OutboundTrafficPolicy.EgressProxy ignored".to_string(),
            ]
        );
    }

    #[test]
    fn zero_percent_and_percentage_are_fine() {
        let out = run(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: pp}\nspec:\n  hosts: [pp]\n  http:\n  - fault:\n      delay: {percentage: {value: 5}, fixedDelay: 1s}\n    route: [{destination: {host: pp}}]\n",
        );
        assert!(out.is_empty(), "{out:?}");
    }
}
