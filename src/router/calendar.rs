//! TEMPORARY STUB (replaced by the calendar branch).
use serde::Deserialize;
#[derive(Debug, Clone, Deserialize)]
pub struct BusinessHoursConfig {
    pub time_zone: String,
}
#[derive(Debug, thiserror::Error)]
#[error("calendar")]
pub struct CalendarError;
#[derive(Debug, Clone)]
pub struct BusinessCalendar;
impl BusinessCalendar {
    pub fn always_open() -> Self {
        BusinessCalendar
    }
    pub fn from_config(_c: &BusinessHoursConfig) -> Result<Self, CalendarError> {
        Ok(BusinessCalendar)
    }
    pub fn is_open(&self, _at_ms: u64) -> bool {
        true
    }
    pub fn next_open(&self, at_ms: u64) -> Option<u64> {
        Some(at_ms)
    }
    pub fn add_business_time(&self, start_ms: u64, business_ms: u64) -> Option<u64> {
        Some(start_ms + business_ms)
    }
    pub fn describe_next_open(&self, _at_ms: u64) -> Option<String> {
        None
    }
}
