package config

func validatePattern(string) error { return nil }
