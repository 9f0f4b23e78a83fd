//! Metrics: HDR histograms and counters per worker, interval snapshots.
