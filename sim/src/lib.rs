//! Simulated HubSpot and Xero: HTTP servers speaking the subsets of each API that
//! Tandem's connectors use, for the demo, the tests and the benchmarks.
