//go:build !linux

package facts

// The helper runs on Linux only; these let the controller build elsewhere.

func uname() (release, machine string) { return "", "" }

type drvinfo struct {
	driver, version, firmware, busInfo string
}

type ethtool struct{}

func openEthtool() *ethtool { return nil }

func (e *ethtool) close() {}

func (e *ethtool) info(string) (drvinfo, bool) { return drvinfo{}, false }
