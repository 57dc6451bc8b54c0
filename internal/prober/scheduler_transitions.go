package prober

import "context"

// emit queues t for delivery. Workers never block on a slow consumer:
// the queue grows instead, and the forwarder delivers it in order.
func (s *Scheduler) emit(t Transition) {
	s.tmu.Lock()
	s.tq = append(s.tq, t)
	s.tmu.Unlock()
	s.transitions.Add(1)
	select {
	case s.tWake <- struct{}{}:
	default:
	}
}

// forward delivers queued transitions on s.out until ctx is done.
func (s *Scheduler) forward(ctx context.Context) {
	for {
		s.tmu.Lock()
		var t Transition
		ok := len(s.tq) > 0
		if ok {
			t = s.tq[0]
			s.tq[0] = Transition{}
			s.tq = s.tq[1:]
			if len(s.tq) == 0 {
				s.tq = nil // let a long backlog's array go
			}
		}
		s.tmu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.tWake:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case s.out <- t:
		}
	}
}
