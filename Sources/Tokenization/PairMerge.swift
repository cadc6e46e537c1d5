/// The merge step shared by every BPE flavour here: repeatedly replace the adjacent pair with the best
/// priority by its merged token, the leftmost pair winning ties, until no pair merges.
///
/// This is llama2.c `run.c` `encode()` (highest score, strictly greater so leftmost wins), llama.cpp's SPM
/// session (score, then left position) and byte-level BPE (lowest merge rank, then left position) at once:
/// a rank is passed as priority `-rank`. The O(n²) rescan of run.c is replaced by a max-heap of candidate
/// pairs over a doubly linked list; stale candidates are skipped on pop, which gives the identical sequence
/// of merges (the heap always yields the current best pair, ties broken by original position = leftmost).
protocol MergeRules {
    /// The priority (higher merges first) and resulting id of merging `left` then `right`, or nil.
    func merge(_ left: Int32, _ right: Int32) -> (priority: Float, merged: Int32)?
}

enum PairMerge {
    private struct Candidate {
        var priority: Float
        var left: Int32
        var right: Int32
        var leftToken: Int32
        var rightToken: Int32
        var merged: Int32

        /// Heap order: higher priority first, then the leftmost position.
        @inline(__always) func before(_ other: Candidate) -> Bool {
            priority > other.priority || (priority == other.priority && left < other.left)
        }
    }

    /// Merges `tokens` in place.
    static func run<R: MergeRules>(_ tokens: inout [Int32], rules: R) {
        let n = tokens.count
        if n < 2 { return }
        if n == 2 {
            if let m = rules.merge(tokens[0], tokens[1]) { tokens = [m.merged] }
            return
        }
        var next = [Int32](unsafeUninitializedCapacity: n) { b, c in
            for i in 0..<n { b[i] = Int32(i + 1) }
            b[n - 1] = -1
            c = n
        }
        var prev = [Int32](unsafeUninitializedCapacity: n) { b, c in
            for i in 0..<n { b[i] = Int32(i - 1) }
            c = n
        }
        var heap: [Candidate] = []
        heap.reserveCapacity(n)

        func push(_ i: Int32) {
            let j = next[Int(i)]
            if j < 0 { return }
            let a = tokens[Int(i)], b = tokens[Int(j)]
            guard let m = rules.merge(a, b) else { return }
            heap.append(Candidate(priority: m.priority, left: i, right: j, leftToken: a, rightToken: b, merged: m.merged))
            var k = heap.count - 1
            while k > 0 {
                let p = (k - 1) / 2
                if heap[k].before(heap[p]) { heap.swapAt(k, p); k = p } else { break }
            }
        }
        func pop() -> Candidate {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var k = 0
                let count = heap.count
                while true {
                    let l = 2 * k + 1, r = l + 1
                    var best = k
                    if l < count && heap[l].before(heap[best]) { best = l }
                    if r < count && heap[r].before(heap[best]) { best = r }
                    if best == k { break }
                    heap.swapAt(k, best)
                    k = best
                }
            }
            return top
        }

        let removed: Int32 = -2
        for i in 0..<(n - 1) { push(Int32(i)) }
        while !heap.isEmpty {
            let c = pop()
            let i = Int(c.left), j = Int(c.right)
            // Stale: one side already merged away or changed, or no longer adjacent.
            if prev[i] == removed || prev[j] == removed || next[i] != c.right
                || tokens[i] != c.leftToken || tokens[j] != c.rightToken { continue }
            tokens[i] = c.merged
            let after = next[j]
            next[i] = after
            if after >= 0 { prev[Int(after)] = c.left }
            prev[j] = removed
            if prev[i] >= 0 { push(prev[i]) }
            push(c.left)
        }
        var out: [Int32] = []
        out.reserveCapacity(n)
        var k: Int32 = 0
        while k >= 0 { out.append(tokens[Int(k)]); k = next[Int(k)] }
        tokens = out
    }
}
