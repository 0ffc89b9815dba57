//! Placeholder, replaced by the model.
macro_rules! stub { ($($n:ident),*) => { $( #[derive(Clone, Debug, Default, serde::Deserialize)] pub struct $n {} )* } }
stub!(ServiceSpec, PodSpec, NamespaceSpec, SecretSpec, NodeSpec, KubernetesGatewaySpec, RequestAuthenticationSpec);
