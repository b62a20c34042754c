//! The network's topology, described once: [`NetSpec::topology`] lists the steps of a forward
//! pass in execution order (stem, then per stage an optional 2x2 max pool and its blocks, then
//! the head), each with its shapes and its layer names.
//!
//! Everything that walks a network (the Burn model's construction and forward pass, the fold to
//! the integer format, the file's writer and reader, both integer engines, the layer list and
//! the accumulator bounds) iterates this list and handles each [`Node`] in one exhaustive
//! `match`: a new kind of step is a new variant, and the compiler points at every consumer.

use std::fmt;

use crate::arch::{GateMode, MuxInputs, NetSpec};

/// A block's place: stage and block indices, both 0-based. Its layers are named
/// `s{stage + 1}.b{block}.{part}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockId {
    /// Stage index.
    pub stage: usize,
    /// Block index within the stage (0 is the stage's first, width-changing CFLOG).
    pub block: usize,
}

impl BlockId {
    /// The name of one of the block's layers, e.g. `s1.b0.pw1` for `part = "pw1"`.
    pub fn layer(&self, part: &str) -> String {
        format!("{self}.{part}")
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}.b{}", self.stage + 1, self.block)
    }
}

/// The name of the max pool before stage `stage` (0-based): `s{stage + 1}.pool`.
pub fn pool_name(stage: usize) -> String {
    format!("s{}.pool", stage + 1)
}

/// The MRB part of a block after a stage's first: the gate and the multiplexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residual {
    /// How the gate chooses.
    pub gate: GateMode,
    /// What the multiplexer selects between.
    pub mux: MuxInputs,
}

/// A CFLOG block (with its MRB gate and multiplexer when `residual` is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockNode {
    /// Its place.
    pub id: BlockId,
    /// Its position among all blocks, in execution order (0-based).
    pub index: usize,
    /// Input channels.
    pub c_in: usize,
    /// Inner width `m` (PW1's output, the grouped convolution's width).
    pub m: usize,
    /// Output width `n` (the CA layer's output).
    pub n: usize,
    /// Groups of the grouped convolution.
    pub groups: usize,
    /// Kernel of the grouped convolution.
    pub kernel: usize,
    /// Feature map `[h, w]`.
    pub size: [usize; 2],
    /// BN + QReLU after the grouped convolution.
    pub inner_norm: bool,
    /// Set for every block but a stage's first: an MRB.
    pub residual: Option<Residual>,
}

/// One step of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The kxk ternary convolution on pixels, then requantization to codes.
    Stem {
        /// Input `[c, h, w]`.
        input: [usize; 3],
        /// Output channels.
        out: usize,
        /// Kernel side.
        kernel: usize,
    },
    /// 2x2 max pooling (stride 2) before stage `stage`.
    Pool {
        /// The stage it leads into (0-based, never 0).
        stage: usize,
        /// Input `[c, h, w]`.
        input: [usize; 3],
    },
    /// A CFLOG block, or an MRB.
    Block(BlockNode),
    /// The 1x1 ternary convolution to class maps, their spatial sums and the per-class affine.
    Head {
        /// Input `[c, h, w]`.
        input: [usize; 3],
        /// Classes.
        classes: usize,
    },
}

impl NetSpec {
    /// The forward pass's steps in execution order (see the module docs). Meaningful for a
    /// spec that [`validate`](NetSpec::validate)s.
    pub fn topology(&self) -> Vec<Node> {
        let [mut h, mut w] = self.input_size;
        let mut nodes = vec![Node::Stem {
            input: [self.in_channels, h, w],
            out: self.stem_width,
            kernel: self.kernel_size,
        }];
        let mut c = self.stem_width;
        let mut index = 0;
        for (stage, st) in self.stages.iter().enumerate() {
            if stage > 0 {
                nodes.push(Node::Pool {
                    stage,
                    input: [c, h, w],
                });
                (h, w) = (h / 2, w / 2);
            }
            for block in 0..st.blocks {
                nodes.push(Node::Block(BlockNode {
                    id: BlockId { stage, block },
                    index,
                    c_in: c,
                    m: st.m,
                    n: st.n,
                    groups: st.groups,
                    kernel: self.kernel_size,
                    size: [h, w],
                    inner_norm: self.inner_norm,
                    residual: (block > 0).then_some(Residual {
                        gate: self.gate,
                        mux: self.mux,
                    }),
                }));
                index += 1;
                c = st.n;
            }
        }
        nodes.push(Node::Head {
            input: [c, h, w],
            classes: self.num_classes,
        });
        nodes
    }

    /// The blocks alone, in execution order.
    pub fn blocks(&self) -> Vec<BlockNode> {
        self.topology()
            .into_iter()
            .filter_map(|node| match node {
                Node::Block(b) => Some(b),
                Node::Stem { .. } | Node::Pool { .. } | Node::Head { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::tests::tiny;

    #[test]
    fn tiny_topology_by_hand() {
        let nodes = tiny().topology();
        assert_eq!(nodes.len(), 6);
        assert_eq!(
            nodes[0],
            Node::Stem {
                input: [1, 8, 8],
                out: 8,
                kernel: 3
            }
        );
        let Node::Block(b) = nodes[2] else {
            panic!("{:?}", nodes[2])
        };
        assert_eq!(
            (b.id.to_string(), b.index, b.c_in, b.size),
            ("s1.b1".into(), 1, 8, [8, 8])
        );
        assert!(b.residual.is_some());
        assert_eq!(
            nodes[3],
            Node::Pool {
                stage: 1,
                input: [8, 8, 8]
            }
        );
        let Node::Block(b) = nodes[4] else {
            panic!("{:?}", nodes[4])
        };
        assert_eq!(
            (b.id.layer("pw1"), b.c_in, b.n, b.size),
            ("s2.b0.pw1".into(), 8, 16, [4, 4])
        );
        assert_eq!(b.residual, None);
        assert_eq!(
            nodes[5],
            Node::Head {
                input: [16, 4, 4],
                classes: 10
            }
        );
        assert_eq!(tiny().blocks().len(), 3);
        assert_eq!(pool_name(1), "s2.pool");
    }
}
