package overlay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

const (
	// IPSetName is the set of addresses allowed to send to the VXLAN port.
	IPSetName = "kubeseed-nodes"
	ipsetType = "hash:ip"
	// filterComment marks kubeseed's INPUT rule in iptables-save.
	filterComment = "kubeseed: only cluster nodes may send VXLAN"
	// iptablesWait bounds how long one iptables call waits for the xtables
	// lock (go-iptables has no context).
	iptablesWait = 5
)

// filterRule is the INPUT rule admitting VXLAN only from cluster nodes.
// The kernel decapsulates whatever reaches the port, so anyone else could
// inject packets into the pod network.
func filterRule(port int) []string {
	return []string{
		"-p", "udp", "--dport", strconv.Itoa(port),
		"-m", "set", "!", "--match-set", IPSetName, "src",
		"-m", "comment", "--comment", filterComment,
		"-j", "DROP",
	}
}

// filter owns the ipset and the INPUT rule.
type filter struct {
	ipt  *iptables.IPTables
	port int
}

func newFilter(port int) (*filter, error) {
	ipt, err := iptables.New(iptables.Timeout(iptablesWait))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return &filter{ipt: ipt, port: port}, nil
}

// ensure creates the set (keeping its entries: they still admit the peers
// of the last run) and the rule referring to it. Until the first sync an
// empty set drops all VXLAN, which is the safe side.
func (f *filter) ensure() error {
	if err := ensureIPSet(); err != nil {
		return err
	}
	rule := filterRule(f.port)
	ok, err := f.ipt.Exists("filter", "INPUT", rule...)
	if err != nil {
		return fmt.Errorf("iptables check INPUT VXLAN filter: %w", err)
	}
	if ok {
		return nil
	}
	// First, so no earlier ACCEPT lets VXLAN past.
	if err := f.ipt.Insert("filter", "INPUT", 1, rule...); err != nil {
		return fmt.Errorf("iptables insert INPUT VXLAN filter: %w", err)
	}
	return nil
}

// sync makes the set's entries equal want.
func (f *filter) sync(want []string) (added, removed []string, err error) {
	have, err := ipsetEntries()
	if err != nil {
		return nil, nil, err
	}
	add, del := ipsetDiff(want, have)
	var errs []error
	for _, ip := range add {
		if err := ipsetEntry(ip, true); err != nil {
			errs = append(errs, err)
			continue
		}
		added = append(added, ip)
	}
	for _, ip := range del {
		if err := ipsetEntry(ip, false); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ip)
	}
	return added, removed, errors.Join(errs...)
}

func ensureIPSet() error {
	err := safeNetlink(func() error {
		// Replace drops NLM_F_EXCL: an identical set is fine, a
		// different one is an error.
		return netlink.IpsetCreate(IPSetName, ipsetType, netlink.IpsetCreateOptions{Replace: true, Family: unix.AF_INET})
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nl.IPSetError(nl.IPSET_ERR_EXIST_SETNAME2)):
		return fmt.Errorf("ipset %s exists with another type or options than %s family inet; `kubeseed reset` removes it", IPSetName, ipsetType)
	default:
		return fmt.Errorf("ipset create %s %s (kernel needs ip_set, ip_set_hash_ip, xt_set): %w", IPSetName, ipsetType, err)
	}
}

func ipsetEntries() ([]string, error) {
	var res *netlink.IPSetResult
	err := safeNetlink(func() error {
		var err error
		res, err = netlink.IpsetList(IPSetName)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ipset list %s: %w", IPSetName, err)
	}
	if res.TypeName != "" && res.TypeName != ipsetType {
		return nil, fmt.Errorf("ipset %s is %s, want %s", IPSetName, res.TypeName, ipsetType)
	}
	ips := make([]string, 0, len(res.Entries))
	for _, e := range res.Entries {
		if e.IP != nil {
			ips = append(ips, e.IP.String())
		}
	}
	return ips, nil
}

// ipsetEntry adds or deletes one address; Replace drops NLM_F_EXCL, so an
// entry already present (or absent) is no error.
func ipsetEntry(ip string, add bool) error {
	e := &netlink.IPSetEntry{IP: parseIPv4(ip), Replace: true}
	op, call := "add", netlink.IpsetAdd
	if !add {
		op, call = "del", netlink.IpsetDel
	}
	if err := safeNetlink(func() error { return call(IPSetName, e) }); err != nil {
		return fmt.Errorf("ipset %s %s %s: %w", op, IPSetName, ip, err)
	}
	return nil
}

// destroyIPSet removes the set; the kernel may release the reference of a
// just-deleted iptables rule a moment later, hence the short retry.
func destroyIPSet() error {
	var err error
	for range 20 {
		err = safeNetlink(func() error { return netlink.IpsetDestroy(IPSetName) })
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, nl.IPSetError(nl.IPSET_ERR_BUSY)), errors.Is(err, nl.IPSetError(nl.IPSET_ERR_REFERENCED)):
			time.Sleep(100 * time.Millisecond)
		default:
			return fmt.Errorf("ipset destroy %s: %w", IPSetName, err)
		}
	}
	return fmt.Errorf("ipset destroy %s (still referenced by an iptables rule?): %w", IPSetName, err)
}

// safeNetlink turns a panic into an error: netlink v1.3.1's ipsetExecute
// asserts every error is a syscall.Errno, and a dump interrupted mid-way
// (ErrDumpInterrupted) is not one.
func safeNetlink(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("netlink: %v", r)
		}
	}()
	return f()
}

// ownInputRules returns the 1-based rule numbers of INPUT rules that refer
// to kubeseed's set, from `iptables -S INPUT` lines (the first is -P).
// Numbers, not specs: CleanUp does not know the port a past run used.
func ownInputRules(lines []string) []int {
	var ids []int
	n := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "-A INPUT ") {
			continue
		}
		n++
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--match-set" && f[i+1] == IPSetName {
				ids = append(ids, n)
				break
			}
		}
	}
	return ids
}
