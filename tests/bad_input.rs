//! Bad input: each gets a clear 4xx naming the problem, and nothing stored changes.

mod support;

