//! Placeholder analyzers.
use super::{Analyzer, Context, Message};

pub struct DeprecationAnalyzer;

impl Analyzer for DeprecationAnalyzer {
    fn name(&self) -> &'static str {
        "deprecation.DeprecationAnalyzer"
    }
    fn description(&self) -> &'static str {
        ""
    }
    fn analyze(&self, _ctx: &Context<'_>, _out: &mut Vec<Message>) {}
}
