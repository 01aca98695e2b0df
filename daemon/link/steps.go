package link

import "time"

// StepTimer reports the wall time of consecutive steps (the bench prints
// them). Made with a nil report it does nothing and costs nothing.
type StepTimer struct {
	report func(step string, d time.Duration)
	last   time.Time
}

// NewStepTimer starts timing the first step now.
func NewStepTimer(report func(step string, d time.Duration)) StepTimer {
	if report == nil {
		return StepTimer{}
	}
	return StepTimer{report: report, last: time.Now()}
}

// Step reports the time since the previous step (or the start) as name.
func (t *StepTimer) Step(name string) {
	if t.report == nil {
		return
	}
	now := time.Now()
	t.report(name, now.Sub(t.last))
	t.last = now
}

// Reset starts the next step now, leaving out time reported elsewhere.
func (t *StepTimer) Reset() {
	if t.report != nil {
		t.last = time.Now()
	}
}
