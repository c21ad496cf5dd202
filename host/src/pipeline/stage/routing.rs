//! Where a stage's outputs go: `main` down the chain, outputs sinks take to them, `rejected`
//! to the dead letters.

use crate::engine::Emitted;
use crate::pipeline::lineage::{Lineage, Traced};
use crate::pipeline::plan::Plan;
use crate::pipeline::sinks::Tap;
use crate::pipeline::stage::Aside;

/// Where a stage's outputs go besides `main` down the chain.
#[derive(Debug, Clone)]
pub(in crate::pipeline) struct Routing {
    pub(in crate::pipeline) name: String,
    pub(in crate::pipeline) index: usize,
    /// Outputs sinks take (`main` too, when a sink takes it from a stage not last).
    pub(in crate::pipeline) tapped: Vec<String>,
}

impl Routing {
    pub(in crate::pipeline) fn of(plan: &Plan, index: usize) -> Routing {
        let tapped = plan
            .sinks
            .iter()
            .filter_map(|s| match &s.tap {
                Tap::Output { stage, output } if *stage == index => Some(output.clone()),
                _ => None,
            })
            .collect();
        Routing {
            name: plan.stages[index].name.clone(),
            index,
            tapped,
        }
    }
}

/// `main` continues (and goes to a sink that takes it); an output a sink takes goes there;
/// `rejected` goes to dead letters otherwise (the plan refuses other outputs no sink takes).
/// `from` is where the rows of the call's input came from.
pub(in crate::pipeline) fn route(
    routing: &Routing,
    outs: Vec<Emitted>,
    from: &Lineage,
    aside: &mut Vec<Aside>,
) -> Vec<Traced> {
    let mut main = Vec::new();
    for out in outs {
        let lineage = from.through(out.lineage.as_ref());
        let (name, batch) = (out.output, out.rows);
        let tapped = routing.tapped.contains(&name);
        if name == sluice_contract::MAIN {
            if tapped {
                aside.push(Aside::Tap {
                    stage: routing.index,
                    output: name,
                    rows: batch.clone(),
                    lineage: lineage.clone(),
                });
            }
            main.push(Traced { batch, lineage });
        } else if tapped {
            aside.push(Aside::Tap {
                stage: routing.index,
                output: name,
                rows: batch,
                lineage,
            });
        } else {
            aside.push(Aside::Rows {
                stage: routing.name.clone(),
                rows: batch,
                reason: None,
                lineage,
            });
        }
    }
    main
}
