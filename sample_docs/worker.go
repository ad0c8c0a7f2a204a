// Package worker runs Tidewater job handlers. A Worker leases jobs from
// tidewaterd over HTTP, runs the handler registered for each job type, keeps
// each lease alive with heartbeats and reports the outcome as complete or fail.
//
// Delivery is at least once: a handler may run again after a lease expires,
// so handlers must be idempotent. Config and ConfigFromEnv live in config.go;
// Job (with its Decode method), Failure, ErrLeaseLost and the HTTP calls
// (Lease, Heartbeat, Complete, Fail) live in api.go.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Handler processes one job and returns a JSON-serialisable result.
type Handler func(ctx context.Context, job *Job) (any, error)

// RetryableError marks a failure that may succeed later. A non-zero After
// replaces the broker's backoff delay (it is still capped by retry.max_delay).
type RetryableError struct {
	Err   error
	After time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// FatalJobError marks a failure that will never succeed: the broker moves the
// job to the dead-letter queue without using its remaining attempts.
type FatalJobError struct{ Err error }

func (e *FatalJobError) Error() string { return e.Err.Error() }
func (e *FatalJobError) Unwrap() error { return e.Err }

// Retryable, RetryAfter and Fatal classify an error returned by a handler.
// An unwrapped error is treated as retryable.
func Retryable(err error) error                   { return &RetryableError{Err: err} }
func RetryAfter(err error, d time.Duration) error { return &RetryableError{Err: err, After: d} }
func Fatal(err error) error                       { return &FatalJobError{Err: err} }

// Worker leases and runs jobs from one queue.
type Worker struct {
	cfg      Config
	api      *apiClient
	handlers map[string]Handler
	types    []string // job types to ask the broker for, in registration order
}

// New returns a Worker for cfg.
func New(cfg Config) *Worker {
	return &Worker{cfg: cfg, api: newAPIClient(cfg), handlers: make(map[string]Handler)}
}

// Handle registers h for jobType. It is not safe to call once Run has started.
func (w *Worker) Handle(jobType string, h Handler) {
	if _, seen := w.handlers[jobType]; !seen {
		w.types = append(w.types, jobType)
	}
	w.handlers[jobType] = h
}

// Run leases and runs jobs until ctx is cancelled. It then gives running
// handlers cfg.ShutdownGrace to finish; after that their contexts are
// cancelled and they are reported as retryable failures.
func (w *Worker) Run(ctx context.Context) error {
	if len(w.types) == 0 {
		return errors.New("worker: no handlers registered")
	}
	slots := make(chan struct{}, w.cfg.Concurrency) // one token per running job
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	var wg sync.WaitGroup

	for ctx.Err() == nil {
		select { // wait for a free slot before asking for work
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		jobs, err := w.api.Lease(ctx, w.types, 1)
		if err != nil && ctx.Err() == nil {
			slog.Warn("lease failed", "queue", w.cfg.Queue, "err", err)
		}
		if len(jobs) == 0 {
			<-slots
			select { // empty queue or error: wait PollInterval before the next lease
			case <-ctx.Done():
			case <-time.After(w.cfg.PollInterval):
			}
			continue
		}
		wg.Add(1)
		go func(job *Job) {
			defer wg.Done()
			defer func() { <-slots }()
			w.runJob(jobCtx, job)
		}(jobs[0])
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(w.cfg.ShutdownGrace):
		cancelJobs()
		<-done // handlers must honour ctx; a handler that does not blocks here
		return fmt.Errorf("worker: jobs cancelled after %s shutdown grace", w.cfg.ShutdownGrace)
	}
}

// runJob runs one job under a heartbeat and reports its outcome exactly once.
func (w *Worker) runJob(parent context.Context, job *Job) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	go w.heartbeat(ctx, cancel, job.ID)

	result, err := w.call(ctx, job)
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		// Another worker may own the job now; a late report would get 409.
		slog.Warn("lease lost, dropping outcome", "job", job.ID, "attempt", job.Attempt)
		return
	}
	// Report on a fresh context so the outcome reaches the broker during shutdown.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
	defer rcancel()
	if err == nil {
		err = w.api.Complete(rctx, job.ID, result)
	} else {
		var fatal *FatalJobError
		var retry *RetryableError
		f := Failure{Error: err.Error(), Retryable: !errors.As(err, &fatal)}
		if errors.As(err, &retry) {
			f.RetryAfter = retry.After
		}
		err = w.api.Fail(rctx, job.ID, f)
	}
	if err != nil {
		slog.Error("report failed; the lease will expire", "job", job.ID, "err", err)
	}
}

// call invokes the handler, turning a panic into a fatal error with its stack.
// The broker only hands out types listed in w.types, so a handler always exists.
func (w *Worker) call(ctx context.Context, job *Job) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Fatal(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	return w.handlers[job.Type](ctx, job)
}

// heartbeat extends the lease every HeartbeatInterval until ctx ends. When the
// broker answers 410 Gone, it cancels the handler with ErrLeaseLost.
func (w *Worker) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, jobID string) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := w.api.Heartbeat(ctx, jobID)
			if errors.Is(err, ErrLeaseLost) {
				cancel(ErrLeaseLost)
				return
			}
			if err != nil && ctx.Err() == nil {
				slog.Warn("heartbeat failed", "job", jobID, "err", err)
			}
		}
	}
}
