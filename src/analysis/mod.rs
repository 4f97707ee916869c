//! Pure functions that read customer messages: sentiment, entities, summaries. No I/O, no
//! state beyond what is passed in, so they are easy to test and to benchmark.

#[path = "/tmp/helper-a/src/analysis/entities.rs"]
pub mod entities;
#[path = "/tmp/helper-a/src/analysis/sentiment.rs"]
pub mod sentiment;
pub mod summary;
#[path = "/tmp/helper-a/src/analysis/text.rs"]
pub mod text;

#[cfg(test)]
pub mod dataset;
