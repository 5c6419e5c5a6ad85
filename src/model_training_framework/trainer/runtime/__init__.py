"""The process runtime: distributed setup, preemption signals, failure watch, worker signals and sharding."""
