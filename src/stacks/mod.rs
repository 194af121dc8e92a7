//! Stack components, their flavors and stacks, as rules with no I/O: which component types
//! exist, what a flavor asks of a component's configuration and of the connector it is linked
//! to, and what makes a stack. Handlers load records, ask these functions, and store the result.

pub mod config;
pub mod flavors;
pub mod link;
pub mod offers;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{DomainError, DomainResult};

pub use flavors::{Flavor, Flavors};

/// The name of every workspace's default stack and of its two default components.
pub const DEFAULT_NAME: &str = "default";

/// ZenML's `StackComponentType`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ComponentType {
    Alerter,
    Annotator,
    ArtifactStore,
    ContainerRegistry,
    DataValidator,
    ExperimentTracker,
    FeatureStore,
    ImageBuilder,
    LogStore,
    ModelDeployer,
    Orchestrator,
    StepOperator,
    ModelRegistry,
    Deployer,
    Sandbox,
}

impl ComponentType {
    /// Every type, in ZenML's order.
    pub const ALL: [ComponentType; 15] = [
        ComponentType::Alerter,
        ComponentType::Annotator,
        ComponentType::ArtifactStore,
        ComponentType::ContainerRegistry,
        ComponentType::DataValidator,
        ComponentType::ExperimentTracker,
        ComponentType::FeatureStore,
        ComponentType::ImageBuilder,
        ComponentType::LogStore,
        ComponentType::ModelDeployer,
        ComponentType::Orchestrator,
        ComponentType::StepOperator,
        ComponentType::ModelRegistry,
        ComponentType::Deployer,
        ComponentType::Sandbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentType::Alerter => "alerter",
            ComponentType::Annotator => "annotator",
            ComponentType::ArtifactStore => "artifact_store",
            ComponentType::ContainerRegistry => "container_registry",
            ComponentType::DataValidator => "data_validator",
            ComponentType::ExperimentTracker => "experiment_tracker",
            ComponentType::FeatureStore => "feature_store",
            ComponentType::ImageBuilder => "image_builder",
            ComponentType::LogStore => "log_store",
            ComponentType::ModelDeployer => "model_deployer",
            ComponentType::Orchestrator => "orchestrator",
            ComponentType::StepOperator => "step_operator",
            ComponentType::ModelRegistry => "model_registry",
            ComponentType::Deployer => "deployer",
            ComponentType::Sandbox => "sandbox",
        }
    }

    pub fn parse(text: &str) -> Option<ComponentType> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether a stack may hold more than one component of this type.
    pub fn repeats_in_a_stack(self) -> bool {
        matches!(
            self,
            ComponentType::Alerter
                | ComponentType::ExperimentTracker
                | ComponentType::StepOperator
                | ComponentType::Sandbox
        )
    }
}

impl std::fmt::Display for ComponentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks what a stack is made of, by type: an orchestrator and an artifact store, and only
/// one component of each type that does not repeat.
pub fn check_composition(counts: &BTreeMap<ComponentType, usize>) -> DomainResult<()> {
    for (component_type, count) in counts {
        if *count > 1 && !component_type.repeats_in_a_stack() {
            return Err(DomainError::Invalid(format!(
                "a stack holds at most one {component_type}, not {count}"
            )));
        }
    }
    let has = |t| counts.get(&t).is_some_and(|count| *count > 0);
    if !has(ComponentType::Orchestrator) || !has(ComponentType::ArtifactStore) {
        return Err(DomainError::Invalid(
            "a stack must contain an orchestrator and an artifact store".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_names() {
        for t in ComponentType::ALL {
            assert_eq!(ComponentType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(t.as_str().into())
            );
        }
        assert_eq!(ComponentType::parse("orchestrators"), None);
    }

    #[test]
    fn a_stack_needs_an_orchestrator_and_an_artifact_store_once_each() {
        let counts = |pairs: &[(ComponentType, usize)]| pairs.iter().copied().collect();
        let minimal = counts(&[
            (ComponentType::Orchestrator, 1),
            (ComponentType::ArtifactStore, 1),
        ]);
        assert!(check_composition(&minimal).is_ok());
        let no_store = counts(&[(ComponentType::Orchestrator, 1)]);
        assert!(check_composition(&no_store).is_err());
        let two_orchestrators = counts(&[
            (ComponentType::Orchestrator, 2),
            (ComponentType::ArtifactStore, 1),
        ]);
        assert!(check_composition(&two_orchestrators).is_err());
        let two_step_operators = counts(&[
            (ComponentType::Orchestrator, 1),
            (ComponentType::ArtifactStore, 1),
            (ComponentType::StepOperator, 2),
        ]);
        assert!(check_composition(&two_step_operators).is_ok());
    }
}
