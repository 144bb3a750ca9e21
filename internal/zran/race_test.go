//go:build race

package zran

const raceEnabled = true
