//! Istio validation rules.
