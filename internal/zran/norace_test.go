//go:build !race

package zran

const raceEnabled = false
