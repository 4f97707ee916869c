//! Pure functions that read customer messages: sentiment, entities, summaries. No I/O, no
//! state beyond what is passed in, so they are easy to test and to benchmark.

pub mod entities;
pub mod sentiment;
pub mod summary;
pub mod text;

#[cfg(test)]
pub mod dataset;
