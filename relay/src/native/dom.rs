//! A minimal document tree for html5ever's tree builder: an arena of nodes (document, doctype,
//! text, comment, element) that `html` walks once to serialize a template as rrweb-snapshot.
//!
//! It implements only what parsing a whole document needs (html5ever's [`TreeSink`]); no queries,
//! no serialization, no mutation after the parse. It knows nothing of templates or rrweb.

use std::borrow::Cow;
use std::cell::{Cell, Ref, RefCell};

use html5ever::interface::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::{local_name, ns, Attribute, QualName};

/// What a node is.
#[derive(Debug)]
pub(super) enum Kind {
    Document,
    Doctype {
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    },
    Text(StrTendril),
    Comment(StrTendril),
    /// An element with its attributes in source order (html5ever drops repeated names).
    Element(Vec<Attribute>),
    /// A `<template>`'s contents or a processing instruction: never shown.
    Hidden,
}

/// One node of the arena.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) kind: Kind,
    /// The element's name (an empty name for other nodes).
    pub(super) name: QualName,
    pub(super) children: Vec<usize>,
    parent: Option<usize>,
    /// A `<template>`'s contents (a detached `Hidden` node, as the DOM keeps it out of the tree).
    template: Option<usize>,
}

/// A parsed document: node 0 is the document.
#[derive(Debug)]
pub(super) struct Document {
    pub(super) nodes: Vec<Node>,
    pub(super) quirks: QuirksMode,
}

impl Document {
    /// Parses a whole HTML document as a browser does.
    pub(super) fn parse(html: &str) -> Document {
        let sink = Sink {
            nodes: RefCell::new(vec![node(Kind::Document, empty_name())]),
            quirks: Cell::new(QuirksMode::NoQuirks),
        };
        html5ever::parse_document(sink, Default::default()).one(html)
    }
}

fn empty_name() -> QualName {
    QualName::new(None, ns!(), local_name!(""))
}

fn node(kind: Kind, name: QualName) -> Node {
    Node {
        kind,
        name,
        children: Vec::new(),
        parent: None,
        template: None,
    }
}

/// The tree builder's view: handles are arena indexes.
struct Sink {
    nodes: RefCell<Vec<Node>>,
    quirks: Cell<QuirksMode>,
}

impl Sink {
    fn new_node(&self, kind: Kind, name: QualName) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node(kind, name));
        nodes.len() - 1
    }

    fn detach(nodes: &mut [Node], id: usize) {
        if let Some(p) = nodes[id].parent.take() {
            nodes[p].children.retain(|&c| c != id);
        }
    }

    /// Appends text to the text node `at` when it is one; whether it was.
    fn concat(nodes: &mut [Node], at: Option<usize>, text: &StrTendril) -> bool {
        match at.map(|i| &mut nodes[i].kind) {
            Some(Kind::Text(t)) => {
                t.push_tendril(text);
                true
            }
            _ => false,
        }
    }

    /// Inserts `child` into `parent` at `index`, merging text with the node before it.
    fn insert(&self, parent: usize, index: usize, child: NodeOrText<usize>) {
        let id = match child {
            NodeOrText::AppendNode(id) => id,
            NodeOrText::AppendText(text) => {
                let mut nodes = self.nodes.borrow_mut();
                let before = index.checked_sub(1).map(|i| nodes[parent].children[i]);
                if Self::concat(&mut nodes, before, &text) {
                    return;
                }
                drop(nodes);
                self.new_node(Kind::Text(text), empty_name())
            }
        };
        let mut nodes = self.nodes.borrow_mut();
        Self::detach(&mut nodes, id);
        // Detaching may have shifted the siblings (when `id` was one of them, before `index`).
        let index = index.min(nodes[parent].children.len());
        nodes[parent].children.insert(index, id);
        nodes[id].parent = Some(parent);
    }
}

impl TreeSink for Sink {
    type Handle = usize;
    type Output = Document;
    type ElemName<'a> = Ref<'a, QualName>;

    fn finish(self) -> Document {
        Document {
            nodes: self.nodes.into_inner(),
            quirks: self.quirks.get(),
        }
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> usize {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a usize) -> Ref<'a, QualName> {
        Ref::map(self.nodes.borrow(), |n| &n[*target].name)
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> usize {
        let id = self.new_node(Kind::Element(attrs), name);
        if flags.template {
            let contents = self.new_node(Kind::Hidden, empty_name());
            self.nodes.borrow_mut()[id].template = Some(contents);
        }
        id
    }

    fn create_comment(&self, text: StrTendril) -> usize {
        self.new_node(Kind::Comment(text), empty_name())
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> usize {
        self.new_node(Kind::Hidden, empty_name())
    }

    fn append(&self, parent: &usize, child: NodeOrText<usize>) {
        let end = self.nodes.borrow()[*parent].children.len();
        self.insert(*parent, end, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &usize,
        prev_element: &usize,
        child: NodeOrText<usize>,
    ) {
        if self.nodes.borrow()[*element].parent.is_some() {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        let kind = Kind::Doctype {
            name,
            public_id,
            system_id,
        };
        let id = self.new_node(kind, empty_name());
        self.append(&0, NodeOrText::AppendNode(id));
    }

    fn get_template_contents(&self, target: &usize) -> usize {
        let contents = self.nodes.borrow()[*target].template;
        // The tree builder asks only for templates' contents; anything else gets a fresh,
        // detached node, which keeps whatever is put there out of the document as well.
        contents.unwrap_or_else(|| self.new_node(Kind::Hidden, empty_name()))
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.quirks.set(mode);
    }

    fn append_before_sibling(&self, sibling: &usize, new_node: NodeOrText<usize>) {
        let (parent, index) = {
            let nodes = self.nodes.borrow();
            let Some(parent) = nodes[*sibling].parent else {
                return;
            };
            let index = nodes[parent]
                .children
                .iter()
                .position(|c| c == sibling)
                .unwrap_or(nodes[parent].children.len());
            (parent, index)
        };
        if let NodeOrText::AppendNode(id) = new_node {
            // Moving a node that sits before the sibling shifts the sibling's index by one.
            let shift = {
                let nodes = self.nodes.borrow();
                nodes[id].parent == Some(parent) && nodes[parent].children[..index].contains(&id)
            };
            let index = if shift { index - 1 } else { index };
            self.insert(parent, index, NodeOrText::AppendNode(id));
        } else {
            self.insert(parent, index, new_node);
        }
    }

    fn add_attrs_if_missing(&self, target: &usize, attrs: Vec<Attribute>) {
        if let Kind::Element(have) = &mut self.nodes.borrow_mut()[*target].kind {
            for a in attrs {
                if !have.iter().any(|h| h.name == a.name) {
                    have.push(a);
                }
            }
        }
    }

    fn remove_from_parent(&self, target: &usize) {
        Self::detach(&mut self.nodes.borrow_mut(), *target);
    }

    fn reparent_children(&self, node: &usize, new_parent: &usize) {
        let mut nodes = self.nodes.borrow_mut();
        let children = std::mem::take(&mut nodes[*node].children);
        for &c in &children {
            nodes[c].parent = Some(*new_parent);
        }
        nodes[*new_parent].children.extend(children);
    }
}
