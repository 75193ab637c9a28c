package pki

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"
)

// DefaultRenewBefore is how long before expiry a leaf is renewed.
const DefaultRenewBefore = 30 * 24 * time.Hour

// RenewReport is what one renewal pass found and did.
type RenewReport struct {
	*Result  // nil if nothing was renewed
	Renewed  []string
	Blocked  []string // due, but renewing would not extend them: their CA expires first
	Next     string   // the leaf due next ("" if none can be renewed)
	NextAt   time.Time
	Template error // csr.conf.template does not parse; SANs were kept as they are
}

// Renew re-issues every leaf certificate with less than before left,
// keeping its key (CAs are never renewed automatically: replacing one
// needs a restart). SANs are rendered afresh; if the template does not
// parse, a certificate keeps the SANs it has, so a typo never lets it
// expire.
func (m Manager) Renew(ctx context.Context, before time.Duration) (*RenewReport, error) {
	rep := &RenewReport{}
	err := m.locked(ctx, func(recovered string) error {
		pairs, err := m.loadAll()
		if err != nil {
			return err
		}
		now := m.now()
		in, tmplErr, err := m.inputs(pairs)
		if err != nil {
			return err
		}
		updated := map[string]*KeyPair{}
		for _, spec := range Table {
			if spec.KeyOnly || spec.IsCA() {
				continue
			}
			kp, ca := pairs[spec.Name], pairs[spec.CA]
			if kp.Cert.NotAfter.Sub(now) >= before {
				continue
			}
			newNotAfter := now.Add(spec.Lifetime)
			if ca.Cert.NotAfter.Before(newNotAfter) {
				newNotAfter = ca.Cert.NotAfter
			}
			if !newNotAfter.After(kp.Cert.NotAfter.Add(time.Second)) {
				rep.Blocked = append(rep.Blocked, spec.Name)
				continue
			}
			sin := in
			if spec.SANs == TemplateSANs && tmplErr != nil {
				rep.Template = tmplErr
				sin = keepingSANs(in, kp)
			}
			nkp, err := IssueWithKey(spec, sin, ca, kp.Key, now)
			if err != nil {
				return err
			}
			updated[spec.Name] = nkp
			rep.Renewed = append(rep.Renewed, spec.Name)
		}
		if len(updated) > 0 {
			res, err := m.commit(pairs, updated, nil, fmt.Sprintf("automatic renewal (less than %s left)", before), now)
			if err != nil {
				return err
			}
			res.Recovered = recovered
			rep.Result = res
			for n, kp := range updated {
				pairs[n] = kp
			}
		}
		rep.Next, rep.NextAt = nextRenewal(pairs, before, rep.Blocked)
		return nil
	})
	return rep, err
}

// nextRenewal is the leaf whose renewal comes first, and when.
func nextRenewal(pairs map[string]*KeyPair, before time.Duration, blocked []string) (string, time.Time) {
	name, at := "", time.Time{}
	for _, spec := range Table {
		if spec.KeyOnly || spec.IsCA() || slices.Contains(blocked, spec.Name) {
			continue
		}
		t := pairs[spec.Name].Cert.NotAfter.Add(-before)
		if name == "" || t.Before(at) {
			name, at = spec.Name, t
		}
	}
	return name, at
}

// SyncSANs re-issues, keeping keys, every certificate whose SANs differ
// from what the template and the host's current IPs give: run when the
// host's IPs change. If the template does not parse, the TemplateSANs
// certificates are left alone and the parse error is returned with the
// result for the others.
func (m Manager) SyncSANs(ctx context.Context) (*Result, error) {
	var res *Result
	var tmplErr error
	err := m.locked(ctx, func(recovered string) error {
		pairs, err := m.loadAll()
		if err != nil {
			return err
		}
		var in Inputs
		in, tmplErr, err = m.inputs(pairs)
		if err != nil {
			return err
		}
		now := m.now()
		updated := map[string]*KeyPair{}
		for _, spec := range Table {
			if spec.SANs == NoSANs || (spec.SANs == TemplateSANs && tmplErr != nil) {
				continue
			}
			kp := pairs[spec.Name]
			want, err := spec.AltNames(in)
			if err != nil {
				return err
			}
			if sameSANs(want, AltNames{DNS: kp.Cert.DNSNames, IPs: kp.Cert.IPAddresses}) {
				continue
			}
			nkp, err := IssueWithKey(spec, in, pairs[spec.CA], kp.Key, now)
			if err != nil {
				return err
			}
			updated[spec.Name] = nkp
		}
		if len(updated) == 0 {
			return nil
		}
		res, err = m.commit(pairs, updated, nil, "host IPs changed", now)
		if res != nil {
			res.Recovered = recovered
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, tmplErr
}

func sameSANs(a, b AltNames) bool {
	set := func(an AltNames) map[string]bool {
		s := map[string]bool{}
		for _, d := range an.DNS {
			s["dns:"+d] = true
		}
		for _, ip := range an.IPs {
			s["ip:"+ip.String()] = true
		}
		return s
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for k := range sa {
		if !sb[k] {
			return false
		}
	}
	return true
}

// SameIPs compares two IP sets, ignoring order.
func SameIPs(a, b []net.IP) bool {
	return sameSANs(AltNames{IPs: a}, AltNames{IPs: b})
}
