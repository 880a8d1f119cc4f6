//go:build !race

package fleet_test

// raceDetector reports whether the tests run under the race detector,
// which makes the pure-Go SQLite (and River's queries on it) ten to
// twenty times slower.
const raceDetector = false
