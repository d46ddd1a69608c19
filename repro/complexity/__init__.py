"""Complexity columns: parameters, MultiAdds at a 1280x720 output (three counters), runtimes, the table."""
