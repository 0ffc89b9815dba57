//! Analyzers (istioctl analyze).
