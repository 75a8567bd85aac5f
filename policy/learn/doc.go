// Package learn records what the proxy decided about each destination
// (Recorder, Observation) and makes reports of it (Report): the
// destinations seen per client block, the minimal policy that allows
// exactly them, and, against a baseline policy, the rules nobody used and
// the observed destinations it denies. Learning mode and "azegress
// record" and "azegress report" are built on it.
//
// It reads policies through the policy core's exported API only; of the
// module it imports policy and the packages below it (TestDeps).
package learn
