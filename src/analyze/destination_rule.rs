//! Placeholder analyzers.
use super::{Analyzer, Context, Message};

pub struct CaCertificateAnalyzer;

impl Analyzer for CaCertificateAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.CaCertificateAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct SubsetSelectPodAnalyzer;

impl Analyzer for SubsetSelectPodAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.SubsetSelectPodAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}
