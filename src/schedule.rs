//! Load pacing: intended start times (open loop), concurrency caps, hold distributions.
