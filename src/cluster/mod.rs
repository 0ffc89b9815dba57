pub mod outlier;
