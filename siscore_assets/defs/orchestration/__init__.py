"""Jobs, the yearly schedule, and the wave runner behind `siscore run`."""
