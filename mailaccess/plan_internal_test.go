package mailaccess

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/unimail/unimail/mailaccess/driver"
)

// capMailbox has only capabilities: planFor looks at which interfaces a
// mailbox implements and never calls it.
type capMailbox struct{}

func (capMailbox) Name() string                                      { return "cap" }
func (capMailbox) List(context.Context) ([]MessageInfo, error)       { panic("not called") }
func (capMailbox) Open(context.Context, UID) (io.ReadCloser, error)  { panic("not called") }
func (capMailbox) Delete(context.Context, ...UID) error              { panic("not called") }
func (capMailbox) Close(context.Context) error                       { panic("not called") }
func (capMailbox) Abort() error                                      { return nil }
func (capMailbox) Move(context.Context, string, ...UID) error        { panic("not called") }
func (capMailbox) Describe() driver.Description                      { return driver.Description{} }
func (capMailbox) Count() int                                        { panic("not called") }
func (lister) ListAfter(context.Context, UID) ([]MessageInfo, error) { panic("not called") }
func (lister) Name() string                                          { return "lister" }
func (lister) List(context.Context) ([]MessageInfo, error)           { panic("not called") }
func (lister) Open(context.Context, UID) (io.ReadCloser, error)      { panic("not called") }
func (lister) Delete(context.Context, ...UID) error                  { panic("not called") }
func (lister) Close(context.Context) error                           { panic("not called") }
func (lister) Abort() error                                          { return nil }
func (lister) Count() int                                            { panic("not called") }
func (lister) Move(context.Context, string, ...UID) error            { panic("not called") }

type lister struct{}

// plainState is a State without the incremental methods.
type plainState struct{ State }

// TestPlanFor pins the one decision of how a run lists, case by case:
// every retention, with and without a mailbox that lists after a UID,
// with no State, a plain State and an IncrementalState, with and without
// stable UIDs. Only KeepOnServer and KeepFor, with both capabilities and
// stable UIDs, list incrementally; only KeepOnServer reads records by
// lookup. (Whether a UID epoch changed is decided at run time, by the
// State's count: TestPlanMatrix runs that case against real servers.)
func TestPlanFor(t *testing.T) {
	type key struct {
		ret     Retention
		after   bool
		state   string
		session bool
	}
	// The only cases that are not the whole listing.
	want := map[key]plan{
		{KeepOnServer, true, "incremental", false}: {incremental: true, lookup: true},
		{KeepFor(1), true, "incremental", false}:   {incremental: true},
	}
	states := map[string]State{"none": nil, "plain": plainState{&MemoryState{}}, "incremental": &MemoryState{}}
	n := 0
	for _, ret := range []Retention{KeepOnServer, DeleteAfterFetch, KeepFor(1), MoveTo("Archive"), ""} {
		for _, after := range []bool{false, true} {
			for name, st := range states {
				for _, session := range []bool{false, true} {
					var mb Mailbox = capMailbox{}
					if after {
						mb = lister{}
					}
					if _, ok := mb.(driver.AfterLister); ok != after {
						t.Fatalf("test mailbox: AfterLister %v, want %v", ok, after)
					}
					p, err := ret.policy()
					if err != nil {
						t.Fatal(err)
					}
					got := planFor(p, mb, st, driver.Description{SessionUIDs: session})
					r := ret
					if r == "" {
						r = KeepOnServer // the zero Retention plans as KeepOnServer
					}
					if exp := want[key{r, after, name, session}]; got != exp {
						t.Errorf("%s", fmt.Sprintf("retention %q, AfterLister %v, State %s, SessionUIDs %v: plan %+v, want %+v", ret, after, name, session, got, exp))
					}
					n++
				}
			}
		}
	}
	if n != 5*2*3*2 {
		t.Fatalf("%d cases", n)
	}
}
