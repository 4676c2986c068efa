// Sizes more than one module depends on, checked in one place. XokABI defines the page
// (a frame and a disk block) and the capability's name length; XN takes its block size
// from there. BPF depends on nothing, so it states the sizes of its programs' contexts
// itself: this is where they are held to XokABI's and XN's. The kernel checks them at boot.

import BPF
import XN
import XokABI

public enum SharedSizes {
    /// Every relation that does not hold, in words; empty on a consistent build.
    public static var violations: [String] {
        var broken: [String] = []
        if Limits.metadataBlockBytes != KernelLimits.pageBytes { broken.append("a UDF's block context is not a page") }
        if XNLayout.blockBytes != KernelLimits.pageBytes { broken.append("XN's block is not a page") }
        if AclContext.credentialComponentsMax != KernelLimits.nameComponentsMax { broken.append("an acl UDF sees another credential width than capabilities have") }
        if KernelLimits.udfBytesMax > Limits.programSlotsMax * 8 { broken.append("a UDF's frame holds more than a program may be") }
        if KernelLimits.predicateBytesMax > Limits.programSlotsMax * 8 { broken.append("a predicate's bytes exceed a program's slots") }
        if ExposedState.Layout(frames: KernelLimits.framesMax).totalBytes + KernelLimits.predicateRegionBytes > Limits.wakeupWindowBytesMax {
            broken.append("the largest exposed state and a region do not fit a predicate's window")
        }
        if XNLayout.nameBytesMax != KernelLimits.xnNameBytesMax { broken.append("XN's names and the calls' names differ") }
        if KernelLimits.xnChangesMax > XNLayout.modificationsMax { broken.append("a call may carry more changes than XN takes") }
        if !KernelLimits.relationsHold { broken.append("the kernel's own limits disagree") }
        return broken
    }
}
