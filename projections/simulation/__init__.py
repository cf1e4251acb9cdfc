"""The simulated market: ``market`` (prices, trades, rebalances, closures), ``faults``
(malformed events for fault drills) and ``appender`` (appending them, in bulk or live)."""
