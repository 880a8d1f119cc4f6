package mailaccess

// SetListWindow sets the number of UIDs of a listing window for a test,
// and returns what restores it.
func SetListWindow(n int) (restore func()) {
	old := listWindow
	listWindow = n
	return func() { listWindow = old }
}
