package fleet_test

// helperEnv, when set, makes the test binary a worker process (see
// helperMain) instead of running tests.
const helperEnv = "UNIMAIL_FLEET_HELPER"

func helperMain() int { return 2 }
