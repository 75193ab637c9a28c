package overlay

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
)

// flannelDevice matches the IPv4 and IPv6 VXLAN links flannel names after
// their VNI. CleanUp takes no VNI, so it removes any of them.
var flannelDevice = regexp.MustCompile(`^flannel(-v6)?\.[0-9]+$`)

// flannelJumps are the rules flannel's iptables manager adds to built-in
// chains. flannel's own IPTablesManager.CleanUp leaves them (and so cannot
// delete the chains they jump to) and looks for FLANNEL-FWD in nat, not
// filter; this list is what it should have removed.
var flannelJumps = []struct{ table, chain, target, comment string }{
	{"nat", "POSTROUTING", "FLANNEL-POSTRTG", "flanneld masq"},
	{"filter", "FORWARD", "FLANNEL-FWD", "flanneld forward"},
}

// CleanUp removes what Run leaves on the host, for `kubeseed reset`: the
// flannel VXLAN devices (their routes, ARP and FDB entries go with them),
// flannel's iptables chains and jumps, kubeseed's INPUT filter rule and the
// kubeseed-nodes ipset. Absent pieces are no error; it carries on past
// failures and reports them all. Node annotations stay (reset deletes the
// Node). Each iptables call waits at most iptablesWait seconds for the lock.
func CleanUp() error {
	var errs []error
	links, err := netlink.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Vxlan); !ok || !flannelDevice.MatchString(l.Attrs().Name) {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete device %s: %w", l.Attrs().Name, err))
		}
	}

	ipt, err := iptables.New(iptables.Timeout(iptablesWait))
	switch {
	case errors.Is(err, exec.ErrNotFound):
		// flannel and the filter make their rules with this binary: without
		// it there are none.
	case err != nil:
		errs = append(errs, fmt.Errorf("iptables: %w", err))
	default:
		for _, j := range flannelJumps {
			// No chain, no jump to it: iptables refuses one, and -C
			// on it fails rather than answering "absent".
			exists, err := ipt.ChainExists(j.table, j.target)
			if err != nil {
				errs = append(errs, fmt.Errorf("iptables -t %s -S %s: %w", j.table, j.target, err))
				continue
			}
			if !exists {
				continue
			}
			spec := []string{"-m", "comment", "--comment", j.comment, "-j", j.target}
			if err := deleteAll(ipt, j.table, j.chain, spec); err != nil {
				errs = append(errs, err)
			}
			if err := ipt.ClearAndDeleteChain(j.table, j.target); err != nil {
				errs = append(errs, fmt.Errorf("iptables -t %s -X %s: %w", j.table, j.target, err))
			}
		}
		if err := deleteOwnInputRules(ipt); err != nil {
			errs = append(errs, err)
		}
	}
	// The set can only go once no rule refers to it.
	if err := destroyIPSet(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("overlay clean-up: %w", err)
	}
	return nil
}

// maxDuplicates bounds the deletion loops: a rule added more than this often
// is not something a retry loop should chase.
const maxDuplicates = 16

// deleteAll deletes every copy of a rule.
func deleteAll(ipt *iptables.IPTables, table, chain string, spec []string) error {
	for range maxDuplicates {
		ok, err := ipt.Exists(table, chain, spec...)
		if err != nil {
			return fmt.Errorf("iptables -t %s -C %s %v: %w", table, chain, spec, err)
		}
		if !ok {
			return nil
		}
		if err := ipt.Delete(table, chain, spec...); err != nil {
			return fmt.Errorf("iptables -t %s -D %s %v: %w", table, chain, spec, err)
		}
	}
	return fmt.Errorf("iptables -t %s %s: rule %v still present after %d deletions", table, chain, spec, maxDuplicates)
}

// deleteOwnInputRules deletes INPUT rules that refer to kubeseed's set,
// whatever port they name, one at a time from a fresh listing so rule
// numbers stay right.
func deleteOwnInputRules(ipt *iptables.IPTables) error {
	for range maxDuplicates {
		lines, err := ipt.List("filter", "INPUT")
		if err != nil {
			return fmt.Errorf("iptables -S INPUT: %w", err)
		}
		ids := ownInputRules(lines)
		if len(ids) == 0 {
			return nil
		}
		if err := ipt.DeleteById("filter", "INPUT", ids[0]); err != nil {
			return fmt.Errorf("iptables -D INPUT %d (VXLAN filter): %w", ids[0], err)
		}
	}
	return fmt.Errorf("iptables INPUT: rules for ipset %s still present after %d deletions", IPSetName, maxDuplicates)
}
