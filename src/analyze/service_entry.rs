//! Placeholder analyzers.
use super::{Analyzer, Context, Message};

pub struct ProtocolAddressesAnalyzer;

impl Analyzer for ProtocolAddressesAnalyzer {
    fn name(&self) -> &'static str {
        "serviceentry.Analyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}

pub struct ConflictingServiceEntryProtocolAnalyzer;

impl Analyzer for ConflictingServiceEntryProtocolAnalyzer {
    fn name(&self) -> &'static str {
        "serviceentry.ConflictingServiceEntryProtocolAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}
