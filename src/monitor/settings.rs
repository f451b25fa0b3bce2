//! `[monitor]`: the detectors' parameters and the live checks' cadence and tolerances, with the
//! values the evaluations in BENCHMARKS.md were measured with as defaults.

use serde::Deserialize;

use super::detector::DetectorParams;
use super::freshness::FreshnessParams;
use super::prices::PriceTolerance;
use super::seasonal::SeasonalParams;
use super::success_rate::SuccessRateParams;
use super::watch::WatchParams;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSettings {
    /// Seconds between two price checks of the live monitor (both sides read in full).
    pub price_check_interval_secs: u64,
    /// Largest price difference ignored, in minor units of the price's currency...
    pub price_tolerance_minor_units: i64,
    /// ...or in basis points of the ERP price, whichever is larger.
    pub price_tolerance_basis_points: i64,
    /// The ERP price list quote and order lines are checked against (the canonical account does
    /// not carry the customer's own price list).
    pub line_price_book: String,
    pub success_rate: SuccessRateParams,
    pub seasonal: SeasonalParams,
    pub freshness: FreshnessParams,
    /// The generic metric-stream detector (`monitor score`).
    pub detector: DetectorParams,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            price_check_interval_secs: 300,
            price_tolerance_minor_units: 0,
            price_tolerance_basis_points: 0,
            line_price_book: "1".into(),
            success_rate: SuccessRateParams::default(),
            seasonal: SeasonalParams::default(),
            freshness: FreshnessParams::default(),
            detector: DetectorParams::default(),
        }
    }
}

impl MonitorSettings {
    pub fn watch_params(&self) -> WatchParams {
        WatchParams {
            success_rate: self.success_rate.clone(),
            seasonal: self.seasonal.clone(),
            freshness: self.freshness.clone(),
        }
    }

    pub fn price_tolerance(&self) -> PriceTolerance {
        PriceTolerance {
            minor_units: self.price_tolerance_minor_units.max(0),
            basis_points: self.price_tolerance_basis_points.max(0),
        }
    }
}
