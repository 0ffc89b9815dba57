//! Placeholder analyzers.
use super::{Analyzer, Context, Message};

pub struct ConflictingMeshGatewayHostsAnalyzer;

impl Analyzer for ConflictingMeshGatewayHostsAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct DestinationHostAnalyzer;

impl Analyzer for DestinationHostAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationHostAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct DestinationRuleAnalyzer;

impl Analyzer for DestinationRuleAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationRuleAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct GatewayAnalyzer;

impl Analyzer for GatewayAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.GatewayAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct JwtClaimRouteAnalyzer;

impl Analyzer for JwtClaimRouteAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.JWTClaimRouteAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}
