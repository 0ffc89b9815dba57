//! Placeholder analyzers.
use super::{Analyzer, Context, Message};

pub struct CertificateAnalyzer;

impl Analyzer for CertificateAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.CertificateAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct ConflictingGatewayAnalyzer;

impl Analyzer for ConflictingGatewayAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.ConflictingGatewayAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct IngressGatewayPortAnalyzer;

impl Analyzer for IngressGatewayPortAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.IngressGatewayPortAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct SecretAnalyzer;

impl Analyzer for SecretAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.SecretAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}
